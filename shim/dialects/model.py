"""The dialect struct: how one Chat Completions upstream differs from OpenAI's own Chat API.

A dialect is data, not code. Each setting names a vendor behaviour (documented below, with the
vendor that needs it); the algorithms that act on it (the ``<think>`` splitter, tool-call id
rewriting, content flattening) live in named code and are chosen by these values, never by
sniffing model names. Files under ``mappings/`` fill these structs; the defaults describe
OpenAI itself, so ``mappings/openai.toml`` sets nothing and every other file sets only what
differs.

Rule of thumb from the architecture guide: **readers accept every alias ever seen, writers
emit exactly what the target wants.** So ``RequestRules`` are precise (one shape per setting),
while ``ResponseRules`` mostly widen what a reader will recognise.

All structs are frozen and reject unknown fields, so a typo in a TOML file fails at start-up
instead of silently meaning "default". Sequences are tuples so a loaded dialect cannot be
mutated through the cached registry; ``extra_body`` and ``query`` stay dicts (TOML tables) and
must be copied, never mutated, by their users.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "AuthRules",
    "Dialect",
    "ErrorRules",
    "Modality",
    "RequestRules",
    "ResponseRules",
]

Modality = Literal["text", "image", "file", "audio", "video"]
"""A kind of input content part: text, image_url, file, input_audio, video_url."""

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class RequestRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How we *write* requests for this upstream.

    Attributes:
        developer_role: Role used for Open Responses ``developer`` messages. OpenAI accepts
            ``developer``; many chat templates do not: llama.cpp / llama-cpp-python answer
            HTTP 500, Qwen templates under vLLM raise "Unexpected message role", DeepSeek
            answers 400 "unknown variant `developer`", Mistral's schema has no such role.
        system_content: ``"array"`` sends content-part arrays on system messages, ``"string"``
            joins the text parts into one string. llama-cpp-python answers HTTP 500 on array
            content for system messages; DeepSeek answers 422 "invalid type: sequence".
        assistant_content: The same for assistant messages (same vendors).
        user_content: The same for user messages. Only for upstreams that accept no arrays at
            all (DeepSeek); a "string" upstream must also list only ``text`` in
            ``input_modalities``, since images cannot ride in a string.
        tool_content: The same for tool-result messages (llama-cpp-python, DeepSeek).
        tool_calls_content: The ``content`` of an assistant message that carries only
            ``tool_calls``: ``"omit"`` leaves it out (OpenAI) or ``"empty"`` sends ``""``.
            llama-cpp-python answers HTTP 500 both without it (its chat formatters read
            ``message["content"]``: KeyError) and with ``null`` (validation: "Input should be
            a valid string"); ``""`` works (recorded: ``fixtures/_recordings/llamacpp/``).
        max_tokens_field: Which field carries the output-token limit. OpenAI deprecated
            ``max_tokens`` for ``max_completion_tokens`` (required by o-series); Mistral
            rejects ``max_completion_tokens`` (422 extra_forbidden) and Ollama, llama.cpp,
            LM Studio, NIM and TGI only read ``max_tokens``.
        stream_usage: Send ``stream_options.include_usage`` when streaming. Harmless where
            ignored (llama-cpp-python); must be off where the schema forbids it (Mistral).
        stream_auto_tool_choice: The upstream can stream an answer to a request that offers
            tools with ``tool_choice: "auto"``. llama-cpp-python's ``chatml-function-calling``
            format lets the model choose between a message and a call under a grammar, but
            once it picks a call in a streamed request it raises "Automatic streaming tool
            choice is not supported" after sending 200 headers: the stream ends empty, with no
            ``[DONE]``. When false, such requests go upstream unstreamed and the shim replays
            the whole answer to a streaming client as events.
        explicit_tool_choice: Send ``tool_choice: "auto"`` when tools are offered and the client
            named no choice (the Open Responses default). OpenAI defaults to "auto" itself;
            llama-cpp-python's ``chatml-function-calling`` treats a missing choice as "none"
            and leaves the tools out of the prompt.
        tools_in_system_message: The upstream's template prints the tool list only inside a
            system message: llama-cpp-python's ``chatml-function-calling`` renders the functions
            and the instructions for calling them as part of each system message, so a request
            without one offers the model a call it has never been told about (Gemma 3 270M then
            always picks an empty message). When true and tools are offered, a request with no
            system message gets an empty one first.
        named_tool_choice: How a choice of one named function is sent: ``"object"``
            (``{"type": "function", "function": {"name": ...}}``, OpenAI) or ``"required"``:
            ``tool_choice: "required"`` with only that function offered, which obliges the
            model to call exactly it. llama-server reads ``tool_choice`` as a string and
            replaces any other type by ``"auto"`` with only a log warning, so the object form
            silently lets the model answer in text.
        required_tool_choice: How ``tool_choice: "required"`` is sent: ``"required"`` (OpenAI)
            or ``"named"``: with exactly one function offered, as the object naming it (the same
            demand); with several, refused (400 ``unsupported_parameter``). llama-cpp-python's
            ``chatml-function-calling`` answers HTTP 500 to "required" (an assertion accepts
            only "auto"), while a named function is generated under that function's JSON-schema
            grammar, so a forced call really comes back as a call.
        reasoning_effort: How the Open Responses ``reasoning.effort`` is sent:
            ``"reasoning_effort"`` (top-level string, OpenAI), ``"reasoning_object"``
            (``{"reasoning": {"effort": ...}}``, OpenRouter) or ``"drop"`` (with a
            diagnostic) for upstreams that reject both.
        reasoning_replay: How reasoning input items go back upstream on assistant messages:
            ``"field"`` (a message field named by ``reasoning_replay_field``; DeepSeek,
            vLLM, Ollama), ``"think_tags"`` (``<think>…</think>`` prepended to the assistant
            content, for templates that parse it back) or ``"drop"`` (OpenAI's Chat API
            takes no reasoning input; Mistral rejects the extra field with 422).
        reasoning_replay_field: The message field used by ``reasoning_replay = "field"``:
            ``reasoning_content`` (DeepSeek, older vLLM) or ``reasoning`` (vLLM since the
            rename, Ollama, OpenRouter).
        reasoning_replay_scope: ``"all"`` assistant messages, or only those carrying
            ``tool_calls``. DeepSeek's thinking mode demands the reasoning back on tool-call
            turns (400 otherwise) and ignores it elsewhere, so sending it only there saves
            input tokens.
        tool_call_ids: ``"passthrough"`` or ``"alnum9"``: Mistral rejects any tool-call id
            that is not exactly nine ASCII letters/digits, so ids are rewritten
            deterministically (and consistently between ``tool_calls`` and ``tool`` messages).
        input_modalities: The content-part kinds the upstream accepts; anything else is
            dropped with an ``unsupported_content`` diagnostic instead of a 400 upstream.
        json_schema: Upstream supports ``response_format: {"type": "json_schema"}``. When
            false the writer sends ``json_object`` (or ``json_object_schema``) and reports a
            ``lossy_value`` diagnostic. DeepSeek and llama-cpp-python have no json_schema.
        json_object: Upstream supports ``response_format: {"type": "json_object"}``. LM
            Studio rejects it ("'response_format.type' must be 'json_schema' or 'text'"); the
            writer then sends a json_schema whose schema is ``{"type": "object"}``, which
            means the same thing.
        json_object_schema: When ``json_schema`` is false, carry the schema inside the
            json_object as ``response_format.schema`` (the Anyscale shape that
            llama-cpp-python and llama.cpp's server constrain with a grammar), so nothing is
            lost and no diagnostic is needed.
        stream_to_cancel: The upstream stops generating when the client closes the connection
            only for a streamed request (llama-cpp-python finishes an unstreamed one, however
            long). A background turn then goes upstream streamed (and is collected), so that a
            cancel, which closes the connection, stops the generation; so does a JSON turn on
            a route with ``cancel_json`` (a client hanging up then stops it).
        drop_params: Request fields this upstream rejects; the writer removes them and
            reports a ``dropped_param`` diagnostic (Mistral's strict schema rejects ``store``,
            ``user``, ``seed``…).
        extra_body: Fixed fields merged into every request body (vendor switches a deployment
            always wants). Read-only: writers copy it.
    """

    developer_role: Literal["developer", "system"] = "developer"
    system_content: Literal["string", "array"] = "array"
    assistant_content: Literal["string", "array"] = "array"
    user_content: Literal["string", "array"] = "array"
    tool_content: Literal["string", "array"] = "array"
    tool_calls_content: Literal["omit", "empty"] = "omit"
    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    stream_usage: bool = True
    stream_auto_tool_choice: bool = True
    explicit_tool_choice: bool = False
    tools_in_system_message: bool = False
    stream_to_cancel: bool = False
    named_tool_choice: Literal["object", "required"] = "object"
    required_tool_choice: Literal["required", "named"] = "required"
    reasoning_effort: Literal["reasoning_effort", "reasoning_object", "drop"] = "reasoning_effort"
    reasoning_replay: Literal["field", "think_tags", "drop"] = "drop"
    reasoning_replay_field: _NonEmpty = "reasoning_content"
    reasoning_replay_scope: Literal["all", "tool_calls"] = "all"
    tool_call_ids: Literal["passthrough", "alnum9"] = "passthrough"
    input_modalities: tuple[Modality, ...] = ("text", "image", "file", "audio")
    json_schema: bool = True
    json_object: bool = True
    json_object_schema: bool = False
    drop_params: tuple[str, ...] = ()
    extra_body: dict[str, Any] = {}


class ResponseRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How we *read* this upstream's answers (chunks and whole bodies alike).

    Attributes:
        reasoning_fields: Delta/message fields that hold raw reasoning text, in order; the
            first non-empty one wins, so servers that fill two of them with the same text
            (vLLM during its ``reasoning_content`` → ``reasoning`` rename, OpenRouter) are
            not read twice. DeepSeek, llama.cpp and LM Studio use ``reasoning_content``;
            vLLM, Ollama and OpenRouter use ``reasoning``.
        think_tags: Split ``<think>…</think>`` out of ``content`` into reasoning. For servers
            that run no reasoning parser (plain templates, LM Studio with the split setting
            off, Together-hosted R1 behind the Hugging Face router, Nemotron on NIM).
        think_open: The opening tag the splitter looks for.
        think_close: The closing tag.
        think_start_inside: The chat template already opened ``<think>`` in the prompt
            (DeepSeek-R1 distills, Qwen3 thinking templates), so the output starts inside the
            reasoning and only ever shows the closing tag.
        think_unclosed: What a block that never closes was; only matters with
            ``think_start_inside`` and no explicit opening tag. ``"reasoning"`` streams the
            output as reasoning at once (the usual case: a thinking model, maybe cut off by
            ``max_tokens``); ``"text"`` buffers first and, if the stream ends with no closing
            tag, emits it all as text (a template that opens the tag for a model that often
            does not think). An explicit opening tag that never closes is always reasoning.
        tool_call_index_missing: Policy for stream chunks whose ``tool_calls[]`` lack
            ``index`` (some vendors omit it): ``"sequential"`` numbers new ids in order of
            first appearance and continues an entry that has no id.
        close_truncated_arguments: A call the upstream reports finished (``finish_reason:
            "tool_calls"``) whose arguments are JSON cut short gets the missing closing
            characters appended (``shim/translate/json_closing.py``). llama-cpp-python's
            ``chatml-function-calling`` generates arguments under a JSON grammar yet stops at
            ``<|im_end|>``, which a small model writes inside a string: ``{"cmd": "pwd``.
            Arguments that appending cannot mend are left as they came.
    """

    reasoning_fields: tuple[_NonEmpty, ...] = ("reasoning_content", "reasoning")
    think_tags: bool = False
    think_open: _NonEmpty = "<think>"
    think_close: _NonEmpty = "</think>"
    think_start_inside: bool = False
    think_unclosed: Literal["reasoning", "text"] = "reasoning"
    tool_call_index_missing: Literal["sequential"] = "sequential"
    close_truncated_arguments: bool = False


class ErrorRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How we *read* this upstream's error answers: which of them mean "the input is too long".

    Every vendor words a context-length overflow its own way; the shim turns each into one
    400 ``context_length_exceeded`` in OpenAI's envelope (``shim/upstream/errors.py``), which
    ``truncation: "auto"`` answers by dropping the oldest turns and asking again
    (``shim/conversation/truncation.py``). An error is one when its HTTP status is listed and
    its code, type or message matches (the message as a case-insensitive substring). Arrays
    replace the parent's, so a child lists what it inherits as well.

    Attributes:
        context_length_statuses: HTTP statuses such an error comes with: 400 almost everywhere;
            Ollama's runner fails a prompt it cannot truncate with 500.
        context_length_codes: ``error.code`` values (numbers compared as text): OpenAI and
            llama-cpp-python send ``context_length_exceeded``.
        context_length_types: ``error.type`` values: llama-server sends
            ``exceed_context_size_error`` (with ``code: 400``).
        context_length_messages: Message fragments, lower case: OpenAI, vLLM and
            llama-cpp-python say "maximum context length", llama-server "exceeds the available
            context size", Ollama "exceeds the context length".
    """

    context_length_statuses: tuple[int, ...] = (400,)
    context_length_codes: tuple[_NonEmpty, ...] = ("context_length_exceeded",)
    context_length_types: tuple[_NonEmpty, ...] = ()
    context_length_messages: tuple[_NonEmpty, ...] = ("maximum context length",)

    def is_context_length(self, status: int, code: str | None, type_: str | None, message: str) -> bool:
        if status not in self.context_length_statuses:
            return False
        if code is not None and code in self.context_length_codes:
            return True
        if type_ is not None and type_ in self.context_length_types:
            return True
        lowered = message.lower()
        return any(fragment in lowered for fragment in self.context_length_messages)


class AuthRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How the upstream credential and fixed query parameters are sent.

    Attributes:
        header: ``"authorization"`` sends ``Authorization: Bearer <key>`` (OpenAI and almost
            everyone); ``"api-key"`` sends ``api-key: <key>`` (Azure OpenAI key auth).
        query: Fixed query parameters added to every upstream URL, e.g. Azure's mandatory
            ``api-version``. Read-only: the HTTP client copies it.
    """

    header: Literal["authorization", "api-key"] = "authorization"
    query: dict[str, str] = {}


class Dialect(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One resolved dialect: its file's own settings over those of the dialects it extends.

    Attributes:
        name: The file stem under ``mappings/`` (``deepseek`` for ``deepseek.toml``).
        description: One line for humans: which server or service this describes.
        extends: The parent dialect named in the file, or ``None`` for the base (``openai``).
        request: How requests are written.
        response: How answers are read.
        errors: Which error answers mean a context-length overflow.
        auth: How credentials and fixed query parameters are sent.
    """

    name: str
    description: str
    extends: str | None = None
    request: RequestRules = RequestRules()
    response: ResponseRules = ResponseRules()
    errors: ErrorRules = ErrorRules()
    auth: AuthRules = AuthRules()

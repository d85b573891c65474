"""The Chat Completions wire format as msgspec structs, named as openai-python names them.

No translation logic lives here: only the shapes, and the helpers that decode and encode them
with module-level (reused) decoders and encoders.

Three encoding conventions, one per kind of struct
---------------------------------------------------

**Request structs** (``ChatCompletionRequest`` and every ``*Param``; what a client sends us and
what we send upstream) use ``omit_defaults=True`` with ``None`` defaults: ``None`` means "absent",
so ``encode_chat_request`` writes only the fields that were set (some servers reject ``null``).
An explicit ``null`` from a client is therefore normalised away; any real value, including
``false``, ``0``, ``""``, ``[]`` and ``{}``, survives. Fields that OpenAI requires even when null
(``ChatCompletionFunctionMessageParam.content``) have no default and are always written.
Unknown *top-level* request keys are kept in ``ChatCompletionRequest.extra`` by
``decode_chat_request`` and merged back by ``encode_chat_request`` (an ``extra`` key naming a
known field overrides it). Unknown keys inside nested objects are dropped. Always use these two
helpers for requests: plain ``msgspec.json.encode(req)`` ignores ``extra``.

**Response envelopes** (``ChatCompletion``, ``Choice``, ``ChatCompletionMessage``,
``ChatCompletionChunk``, ``ChunkChoice``, ``ChoiceLogprobs``, ``ChatCompletionTokenLogprob``,
``TopLogprob``, ``CompletionUsage``, ``ChatErrorBody``) use ``omit_defaults=False``: every field
is written, ``None`` as an explicit ``null``, as OpenAI does (``"logprobs": null``, ``"finish_reason": null``,
``"content": null``). A few keys that OpenAI writes only sometimes default to ``msgspec.UNSET``
instead: absent stays absent, ``None`` writes ``null``. They are ``ChatCompletionChunk.usage``
(set it to ``None`` on every chunk when the client asked for ``include_usage``) and
``.service_tier``, and ``ChatCompletionMessage.tool_calls``, ``function_call``, ``audio`` and the
vendor fields ``reasoning_content``, ``reasoning``, ``reasoning_details``. ``UNSET`` is falsy, so
``if msg.tool_calls:`` reads all three states correctly (and narrows for mypy).

**Sparse response parts** (``ChoiceDelta``, ``ChoiceDeltaToolCall``, ``ChoiceDeltaToolCallFunction``,
``ChoiceDeltaFunctionCall``, ``ChatCompletionMessageToolCall``, ``Annotation``,
``PromptTokensDetails``, ``CompletionTokensDetails``) use ``omit_defaults=True``: OpenAI writes only
what is set (``"delta": {"content": "Hi"}``, ``{"index": 0, "function": {"arguments": "{"}}``).

The same response structs decode upstream bodies *tolerantly*: missing ``id``, ``object``,
``created``, ``model``, ``choices``, ``index``, ``delta``, tool-call ``index``/``type``/``id``, ``null``
contents and unknown keys everywhere are all accepted. Open enums (``finish_reason``, ``role``,
``service_tier``) are plain ``str`` so vendor values (``"eos"``) reach the reader.

All structs are ``kw_only`` (construct with keywords; encoded key order is declaration order,
matching OpenAI's) and ``gc=False`` (decoded wire data never forms reference cycles).
Decoding errors are msgspec's ``ValidationError``/``DecodeError``, whose message ends in a JSON
path such as ``$.messages[2].content``; callers turn them into ``InvalidRequest``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "CHAT_REQUEST_FIELDS",
    "Annotation",
    "AnnotationURLCitation",
    "AssistantAudio",
    "ChatCompletion",
    "ChatCompletionAllowedToolChoiceParam",
    "ChatCompletionAllowedToolsParam",
    "ChatCompletionAssistantMessageParam",
    "ChatCompletionAudio",
    "ChatCompletionAudioParam",
    "ChatCompletionChunk",
    "ChatCompletionContentPartFileParam",
    "ChatCompletionContentPartImageParam",
    "ChatCompletionContentPartInputAudioParam",
    "ChatCompletionContentPartParam",
    "ChatCompletionContentPartRefusalParam",
    "ChatCompletionContentPartTextParam",
    "ChatCompletionCustomToolParam",
    "ChatCompletionDeveloperMessageParam",
    "ChatCompletionFunctionMessageParam",
    "ChatCompletionFunctionToolParam",
    "ChatCompletionMessage",
    "ChatCompletionMessageCustomToolCallParam",
    "ChatCompletionMessageFunctionToolCallParam",
    "ChatCompletionMessageParam",
    "ChatCompletionMessageToolCall",
    "ChatCompletionMessageToolCallUnionParam",
    "ChatCompletionNamedToolChoiceCustomParam",
    "ChatCompletionNamedToolChoiceParam",
    "ChatCompletionPredictionContentParam",
    "ChatCompletionRequest",
    "ChatCompletionStreamOptions",
    "ChatCompletionSystemMessageParam",
    "ChatCompletionTokenLogprob",
    "ChatCompletionToolChoiceOptionParam",
    "ChatCompletionToolMessageParam",
    "ChatCompletionToolUnionParam",
    "ChatCompletionUserMessageParam",
    "ChatErrorBody",
    "ChatErrorResponse",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaFunctionCall",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallCustom",
    "ChoiceDeltaToolCallFunction",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionTokensDetails",
    "CompletionUsage",
    "ContentArrayOfContentPart",
    "Custom",
    "CustomFormatGrammar",
    "CustomFormatGrammarGrammar",
    "CustomFormatText",
    "CustomToolDefinition",
    "FileFile",
    "Function",
    "FunctionDefinition",
    "ImageURL",
    "InputAudio",
    "JSONSchema",
    "PromptCacheBreakpoint",
    "PromptCacheOptions",
    "PromptTokensDetails",
    "ResponseFormat",
    "ResponseFormatJSONObject",
    "ResponseFormatJSONSchema",
    "ResponseFormatText",
    "ToolName",
    "TopLogprob",
    "WebSearchOptions",
    "WebSearchOptionsUserLocation",
    "WebSearchOptionsUserLocationApproximate",
    "decode_chat_request",
    "decode_chunk",
    "decode_chunk_or_error",
    "decode_completion",
    "decode_error",
    "encode_chat_request",
    "encode_chunk",
    "encode_completion",
]


class _Sparse(msgspec.Struct, omit_defaults=True, kw_only=True, gc=False):
    """Base of requests and sparse response parts: fields equal to their default are not written."""


class _Dense(msgspec.Struct, kw_only=True, gc=False):
    """Base of response envelopes: every field is written, ``None`` as ``null``; ``UNSET`` is omitted."""


# ---------------------------------------------------------------------------------------------
# Request: content parts
# ---------------------------------------------------------------------------------------------


class PromptCacheBreakpoint(_Sparse):
    mode: str
    ttl: str | None = None


class ChatCompletionContentPartTextParam(_Sparse, tag_field="type", tag="text"):
    text: str
    prompt_cache_breakpoint: PromptCacheBreakpoint | None = None


class ImageURL(_Sparse):
    url: str
    detail: str | None = None


class ChatCompletionContentPartImageParam(_Sparse, tag_field="type", tag="image_url"):
    image_url: ImageURL
    prompt_cache_breakpoint: PromptCacheBreakpoint | None = None


class InputAudio(_Sparse):
    data: str
    format: str


class ChatCompletionContentPartInputAudioParam(_Sparse, tag_field="type", tag="input_audio"):
    input_audio: InputAudio
    prompt_cache_breakpoint: PromptCacheBreakpoint | None = None


class FileFile(_Sparse):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class ChatCompletionContentPartFileParam(_Sparse, tag_field="type", tag="file"):
    """openai-python calls this part ``File``."""

    file: FileFile
    prompt_cache_breakpoint: PromptCacheBreakpoint | None = None


class ChatCompletionContentPartRefusalParam(_Sparse, tag_field="type", tag="refusal"):
    refusal: str


ChatCompletionContentPartParam = (
    ChatCompletionContentPartTextParam
    | ChatCompletionContentPartImageParam
    | ChatCompletionContentPartInputAudioParam
    | ChatCompletionContentPartFileParam
)
"""A part of a user message."""

ContentArrayOfContentPart = ChatCompletionContentPartTextParam | ChatCompletionContentPartRefusalParam
"""A part of an assistant message."""


# ---------------------------------------------------------------------------------------------
# Request: tool calls sent back in assistant messages
# ---------------------------------------------------------------------------------------------


class Function(_Dense):
    """A function call's name and JSON arguments; shared by requests and responses."""

    name: str
    arguments: str = ""


class Custom(_Dense):
    """A custom tool call's name and free-form input; shared by requests and responses."""

    name: str
    input: str = ""


class ChatCompletionMessageFunctionToolCallParam(_Sparse, tag_field="type", tag="function"):
    id: str
    function: Function


class ChatCompletionMessageCustomToolCallParam(_Sparse, tag_field="type", tag="custom"):
    id: str
    custom: Custom


ChatCompletionMessageToolCallUnionParam = (
    ChatCompletionMessageFunctionToolCallParam | ChatCompletionMessageCustomToolCallParam
)


class AssistantAudio(_Sparse):
    """A previous audio response, by id (openai-python: ``Audio``)."""

    id: str


# ---------------------------------------------------------------------------------------------
# Request: messages (tagged on ``role``)
# ---------------------------------------------------------------------------------------------


class ChatCompletionSystemMessageParam(_Sparse, tag_field="role", tag="system"):
    content: str | list[ChatCompletionContentPartTextParam]
    name: str | None = None


class ChatCompletionDeveloperMessageParam(_Sparse, tag_field="role", tag="developer"):
    content: str | list[ChatCompletionContentPartTextParam]
    name: str | None = None


class ChatCompletionUserMessageParam(_Sparse, tag_field="role", tag="user"):
    content: str | list[ChatCompletionContentPartParam]
    name: str | None = None


class ChatCompletionAssistantMessageParam(_Sparse, tag_field="role", tag="assistant"):
    """An earlier assistant turn.

    ``reasoning_content`` (DeepSeek), ``reasoning`` (vLLM, OpenRouter) and ``reasoning_details``
    (OpenRouter) are vendor fields some upstreams need sent back.
    """

    content: str | list[ContentArrayOfContentPart] | None = None
    refusal: str | None = None
    name: str | None = None
    tool_calls: list[ChatCompletionMessageToolCallUnionParam] | None = None
    function_call: Function | None = None
    audio: AssistantAudio | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None


class ChatCompletionToolMessageParam(_Sparse, tag_field="role", tag="tool"):
    tool_call_id: str
    content: str | list[ChatCompletionContentPartTextParam]


class ChatCompletionFunctionMessageParam(_Sparse, tag_field="role", tag="function"):
    """Deprecated by OpenAI; ``content`` is required but nullable, so it is always written."""

    name: str
    content: str | None


ChatCompletionMessageParam = (
    ChatCompletionSystemMessageParam
    | ChatCompletionDeveloperMessageParam
    | ChatCompletionUserMessageParam
    | ChatCompletionAssistantMessageParam
    | ChatCompletionToolMessageParam
    | ChatCompletionFunctionMessageParam
)


# ---------------------------------------------------------------------------------------------
# Request: tools and tool_choice
# ---------------------------------------------------------------------------------------------


class FunctionDefinition(_Sparse):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatCompletionFunctionToolParam(_Sparse, tag_field="type", tag="function"):
    function: FunctionDefinition


class CustomFormatText(_Sparse, tag_field="type", tag="text"):
    pass


class CustomFormatGrammarGrammar(_Sparse):
    definition: str
    syntax: str


class CustomFormatGrammar(_Sparse, tag_field="type", tag="grammar"):
    grammar: CustomFormatGrammarGrammar


class CustomToolDefinition(_Sparse):
    """The ``custom`` object of a custom tool (openai-python: ``Custom``)."""

    name: str
    description: str | None = None
    format: CustomFormatText | CustomFormatGrammar | None = None


class ChatCompletionCustomToolParam(_Sparse, tag_field="type", tag="custom"):
    custom: CustomToolDefinition


ChatCompletionToolUnionParam = ChatCompletionFunctionToolParam | ChatCompletionCustomToolParam


class ToolName(_Sparse):
    """``{"name": ...}``: the target of a named tool choice or a legacy ``function_call``."""

    name: str


class ChatCompletionNamedToolChoiceParam(_Sparse, tag_field="type", tag="function"):
    function: ToolName


class ChatCompletionNamedToolChoiceCustomParam(_Sparse, tag_field="type", tag="custom"):
    custom: ToolName


class ChatCompletionAllowedToolsParam(_Sparse):
    mode: str
    tools: list[dict[str, Any]]


class ChatCompletionAllowedToolChoiceParam(_Sparse, tag_field="type", tag="allowed_tools"):
    allowed_tools: ChatCompletionAllowedToolsParam


ChatCompletionToolChoiceOptionParam = (
    Literal["none", "auto", "required"]
    | ChatCompletionNamedToolChoiceParam
    | ChatCompletionNamedToolChoiceCustomParam
    | ChatCompletionAllowedToolChoiceParam
)


# ---------------------------------------------------------------------------------------------
# Request: response_format and the smaller options
# ---------------------------------------------------------------------------------------------


class ResponseFormatText(_Sparse, tag_field="type", tag="text"):
    pass


class ResponseFormatJSONObject(_Sparse, tag_field="type", tag="json_object"):
    pass


class JSONSchema(_Sparse):
    name: str
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormatJSONSchema(_Sparse, tag_field="type", tag="json_schema"):
    json_schema: JSONSchema


ResponseFormat = ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema


class ChatCompletionStreamOptions(_Sparse):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatCompletionAudioParam(_Sparse):
    format: str
    voice: str | dict[str, Any]


class ChatCompletionPredictionContentParam(_Sparse, tag_field="type", tag="content"):
    content: str | list[ChatCompletionContentPartTextParam]


class WebSearchOptionsUserLocationApproximate(_Sparse):
    city: str | None = None
    country: str | None = None
    region: str | None = None
    timezone: str | None = None


class WebSearchOptionsUserLocation(_Sparse, tag_field="type", tag="approximate"):
    approximate: WebSearchOptionsUserLocationApproximate


class WebSearchOptions(_Sparse):
    search_context_size: str | None = None
    user_location: WebSearchOptionsUserLocation | None = None


class PromptCacheOptions(_Sparse):
    mode: str | None = None
    ttl: str | None = None


# ---------------------------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------------------------

_EXTRA_WIRE_NAME = "__shim_extra__"


class ChatCompletionRequest(_Sparse):
    """A ``POST /v1/chat/completions`` body (openai-python: ``CompletionCreateParams``).

    ``extra`` holds unknown top-level keys. Read and write requests with ``decode_chat_request``
    and ``encode_chat_request``; a dialect adds vendor parameters by putting them in ``extra``.
    """

    model: str
    messages: list[ChatCompletionMessageParam]
    audio: ChatCompletionAudioParam | None = None
    frequency_penalty: float | None = None
    function_call: Literal["none", "auto"] | ToolName | None = None
    functions: list[FunctionDefinition] | None = None
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    metadata: dict[str, str] | None = None
    modalities: list[str] | None = None
    n: int | None = None
    parallel_tool_calls: bool | None = None
    prediction: ChatCompletionPredictionContentParam | None = None
    presence_penalty: float | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: PromptCacheOptions | None = None
    prompt_cache_retention: str | None = None
    reasoning_effort: str | None = None
    response_format: ResponseFormat | None = None
    safety_identifier: str | None = None
    seed: int | None = None
    service_tier: str | None = None
    stop: str | list[str] | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: ChatCompletionStreamOptions | None = None
    temperature: float | None = None
    tool_choice: ChatCompletionToolChoiceOptionParam | None = None
    tools: list[ChatCompletionToolUnionParam] | None = None
    top_logprobs: int | None = None
    top_p: float | None = None
    user: str | None = None
    verbosity: str | None = None
    web_search_options: WebSearchOptions | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict, name=_EXTRA_WIRE_NAME)


CHAT_REQUEST_FIELDS: frozenset[str] = frozenset(
    f.encode_name for f in msgspec.structs.fields(ChatCompletionRequest) if f.name != "extra"
)
"""The top-level request keys ``ChatCompletionRequest`` models; any other key goes to ``extra``."""


# ---------------------------------------------------------------------------------------------
# Response: logprobs, usage, message parts
# ---------------------------------------------------------------------------------------------


class TopLogprob(_Dense):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatCompletionTokenLogprob(_Dense):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = msgspec.field(default_factory=list)


class ChoiceLogprobs(_Dense):
    content: list[ChatCompletionTokenLogprob] | None = None
    refusal: list[ChatCompletionTokenLogprob] | None = None


class PromptTokensDetails(_Sparse):
    cached_tokens: int | None = None
    audio_tokens: int | None = None
    cache_write_tokens: int | None = None


class CompletionTokensDetails(_Sparse):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class CompletionUsage(_Dense):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class AnnotationURLCitation(_Dense):
    end_index: int = 0
    start_index: int = 0
    title: str = ""
    url: str = ""


class Annotation(_Sparse):
    type: str
    url_citation: AnnotationURLCitation | None = None


class ChatCompletionAudio(_Dense):
    id: str = ""
    data: str = ""
    expires_at: int = 0
    transcript: str = ""


class ChatCompletionMessageToolCall(_Sparse):
    """A tool call in a response message; untagged so a missing ``type`` still decodes.

    Readers treat ``type`` ``None`` as ``"function"``; writers set ``id``, ``type`` and
    ``function`` (or ``custom``) explicitly.
    """

    id: str | None = None
    type: str | None = None
    function: Function | None = None
    custom: Custom | None = None


# ---------------------------------------------------------------------------------------------
# Response: non-streaming
# ---------------------------------------------------------------------------------------------


class ChatCompletionMessage(_Dense):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | UnsetType | None = UNSET
    function_call: Function | UnsetType | None = UNSET
    audio: ChatCompletionAudio | UnsetType | None = UNSET
    annotations: list[Annotation] | None = None
    reasoning_content: str | UnsetType | None = UNSET
    reasoning: str | UnsetType | None = UNSET
    reasoning_details: list[dict[str, Any]] | UnsetType | None = UNSET


class Choice(_Dense):
    index: int = 0
    message: ChatCompletionMessage = msgspec.field(default_factory=ChatCompletionMessage)
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletion(_Dense):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = msgspec.field(default_factory=list)
    usage: CompletionUsage | None = None
    service_tier: str | None = None
    system_fingerprint: str | None = None


# ---------------------------------------------------------------------------------------------
# Response: streaming
# ---------------------------------------------------------------------------------------------


class ChoiceDeltaFunctionCall(_Sparse):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCallFunction(_Sparse):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCallCustom(_Sparse):
    """A streamed ``custom`` tool call's name (first chunk) and a piece of its input."""

    name: str | None = None
    input: str | None = None


class ChoiceDeltaToolCall(_Sparse):
    """``index`` and ``type`` are ``None`` when a vendor omits them; writers always set both."""

    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: ChoiceDeltaToolCallFunction | None = None
    custom: ChoiceDeltaToolCallCustom | None = None  # ``type: "custom"``


class ChoiceDelta(_Sparse):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    function_call: ChoiceDeltaFunctionCall | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None


class ChunkChoice(_Dense):
    """openai-python: ``chat_completion_chunk.Choice``."""

    index: int = 0
    delta: ChoiceDelta = msgspec.field(default_factory=ChoiceDelta)
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Dense):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    service_tier: str | UnsetType | None = UNSET
    system_fingerprint: str | None = None
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    usage: CompletionUsage | UnsetType | None = UNSET


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ChatErrorBody(_Dense):
    """An error, normalised from any upstream shape; encodes as OpenAI's inner ``error`` object."""

    message: str
    type: str | None = None
    param: str | None = None
    code: str | None = None


class ChatErrorResponse(_Dense):
    """``{"error": {...}}``: an error body, or the final chunk of a failed stream."""

    error: ChatErrorBody


class _ErrorFields(msgspec.Struct, gc=False):
    message: Any = None
    type: Any = None
    param: Any = None
    code: Any = None
    status: Any = None


class _ErrorEnvelope(_ErrorFields):
    error: _ErrorFields | str | None = None
    detail: Any = None
    object: Any = None


# ---------------------------------------------------------------------------------------------
# Decoders and encoders
# ---------------------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_any_decoder = msgspec.json.Decoder()
_top_level_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_request_decoder = msgspec.json.Decoder(ChatCompletionRequest)
_chunk_decoder = msgspec.json.Decoder(ChatCompletionChunk)
_completion_decoder = msgspec.json.Decoder(ChatCompletion)
_error_decoder = msgspec.json.Decoder(list[_ErrorEnvelope] | _ErrorEnvelope)


def decode_chat_request(data: bytes | str) -> ChatCompletionRequest:
    """Decode a client's request body; unknown top-level keys land in ``extra``.

    Raises ``msgspec.ValidationError`` / ``msgspec.DecodeError`` on a malformed body.
    """
    req = _request_decoder.decode(data)
    req.extra = {
        key: _any_decoder.decode(raw)
        for key, raw in _top_level_decoder.decode(data).items()
        if key not in CHAT_REQUEST_FIELDS
    }
    return req


def encode_chat_request(req: ChatCompletionRequest) -> bytes:
    """Encode a request for an upstream: set fields only, then ``extra`` merged in (it wins)."""
    extra = req.extra
    if not extra:
        return _encoder.encode(req)
    base = msgspec.structs.replace(req, extra={})
    if CHAT_REQUEST_FIELDS.isdisjoint(extra):
        body = _encoder.encode(base)
        return body[:-1] + b"," + _encoder.encode(extra)[1:]
    merged: dict[str, Any] = msgspec.to_builtins(base)
    merged.update(extra)
    return _encoder.encode(merged)


def decode_chunk(data: bytes | str) -> ChatCompletionChunk:
    """Decode one SSE ``data`` payload of a Chat Completions stream (not ``[DONE]``)."""
    return _chunk_decoder.decode(data)


def decode_completion(data: bytes | str) -> ChatCompletion:
    """Decode a non-streaming Chat Completions response body."""
    return _completion_decoder.decode(data)


# The encoder's own method, not a function around it: one Python call less per chunk streamed.
encode_chunk: Callable[[ChatCompletionChunk], bytes] = _encoder.encode


def encode_completion(completion: ChatCompletion) -> bytes:
    return _encoder.encode(completion)


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value) if isinstance(value, int | float) else _encoder.encode(value).decode()


def decode_error(data: bytes | str) -> ChatErrorBody | None:
    """Normalise an upstream error body; ``None`` when ``data`` is not a recognisable error.

    Shapes: ``{"error": {"message", "type", "param", "code"}}`` (OpenAI, llama.cpp, OpenRouter),
    ``{"error": "text"}``, ``{"detail": "text" | [...]}`` (FastAPI), top-level
    ``{"object": "error", "message", ...}`` (vLLM) or ``{"message": ...}``, and a one-element list
    of any of these (Gemini). A numeric ``code`` becomes a string; ``status`` fills a missing ``type``.
    """
    try:
        decoded = _error_decoder.decode(data)
    except msgspec.DecodeError:
        return None
    if isinstance(decoded, list):
        if not decoded:
            return None
        decoded = decoded[0]
    fields: _ErrorFields
    if isinstance(decoded.error, _ErrorFields):
        fields = decoded.error
    elif isinstance(decoded.error, str):
        return ChatErrorBody(message=decoded.error)
    elif decoded.detail is not None:
        return ChatErrorBody(message=_opt_str(decoded.detail) or "")
    elif decoded.object == "error" or isinstance(decoded.message, str):
        fields = decoded
    else:
        return None
    return ChatErrorBody(
        message=_opt_str(fields.message) or "",
        type=_opt_str(fields.type) or _opt_str(fields.status),
        param=_opt_str(fields.param),
        code=_opt_str(fields.code),
    )


def decode_chunk_or_error(data: bytes | str) -> ChatCompletionChunk | ChatErrorBody:
    """Decode a stream payload that may be an in-band error (``data: {"error": ...}``)."""
    maybe_error = '"error"' in data if isinstance(data, str) else b'"error"' in data
    if maybe_error:
        error = decode_error(data)
        if error is not None:
            return error
    return _chunk_decoder.decode(data)

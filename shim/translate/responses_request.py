"""Chat Completions request → the hub (Open Responses items) → an Open Responses request.

The reverse direction: a Chat Completions client served over an Open Responses upstream. The
messages are read into hub items once (``messages_to_items``, which the server also stores as
the turn's history) and the request is written for the upstream (``to_responses_request``).

Choices, and why:

* System and developer messages stay *input items with their role and position*; they are not
  lifted into ``instructions``, because ``instructions`` are not inherited through
  ``previous_response_id``: a history replayed from the store must carry them as items.
* An assistant message becomes, in order: a ``reasoning`` item (from the vendor fields
  ``reasoning_content`` / ``reasoning``, as ``reasoning_text`` content), a ``message`` with
  ``output_text`` / ``refusal`` parts, then one ``function_call`` item per tool call. Legacy
  ``function_call`` turns get a deterministic ``call_id`` derived from the message position,
  which the following ``function`` message is paired with by name.
* ``store`` is ``False`` upstream unless the caller says otherwise: the shim owns state.
* ``n`` and ``stop`` are left out without a diagnostic: the server emulates them.
* Everything else with no Responses form is reported to the diagnostics collector.

``encode_create_response_body`` writes the body for the upstream with unset (``None``) fields
omitted at every struct level (some servers reject ``null``s), while free-form JSON (tool
parameter schemas, ``metadata``) is written exactly as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from msgspec import UNSET

from shim.core.diagnostics import Diagnostics
from shim.errors import InvalidRequest
from shim.translate.chat_request_fields import check_chat_fields
from shim.translate.parameters import copy_same_name
from shim.translate.reverse_tools import NativeKind, custom_tool, native_call, native_output
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = ["encode_create_response_body", "messages_to_items", "to_responses_request"]

LOGPROBS_INCLUDE = "message.output_text.logprobs"

_DETAILS: dict[str, Literal["low", "high", "auto"]] = {"low": "low", "high": "high", "auto": "auto"}
_VERBOSITY: dict[str, Literal["low", "medium", "high"]] = {"low": "low", "medium": "medium", "high": "high"}
_EFFORTS: dict[str, r.ReasoningEffort] = {
    "none": "none",
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
}
_MODES: dict[str, r.ToolChoiceValue] = {"none": "none", "auto": "auto", "required": "required"}


# ---------------------------------------------------------------------------------------------
# Messages → items
# ---------------------------------------------------------------------------------------------


class _Items:
    """Builds the hub's input items from Chat messages; one instance per request."""

    def __init__(
        self,
        diags: Diagnostics,
        recalled: Mapping[int, list[r.ItemParam]] | None = None,
        declared: set[str] | None = None,
    ) -> None:
        self.diags = diags
        self.recalled = recalled or {}  # message index → reasoning items the server remembered
        self.out: list[r.ItemParam] = []
        self.legacy_calls: dict[str, str] = {}  # function name → call_id of its latest legacy call
        # The client's own function names: a call to any other name the upstream's native calls
        # are lowered to (apply_patch, shell, local_shell) goes back as the native item.
        self.declared = declared or set()
        self.kinds: dict[str, NativeKind] = {}  # call_id → kind of a call that is not a function

    def add(self, msg: c.ChatCompletionMessageParam, index: int) -> None:
        where = f"messages[{index}]"
        if isinstance(msg, c.ChatCompletionUserMessageParam):
            self.name(msg.name, where)
            self.out.append(r.MessageItemParam(role="user", content=self.user_content(msg.content, where)))
        elif isinstance(msg, c.ChatCompletionSystemMessageParam | c.ChatCompletionDeveloperMessageParam):
            self.name(msg.name, where)
            role: r.Role = "system" if isinstance(msg, c.ChatCompletionSystemMessageParam) else "developer"
            self.out.append(r.MessageItemParam(role=role, content=self.text_content(msg.content, where)))
        elif isinstance(msg, c.ChatCompletionAssistantMessageParam):
            self.assistant(msg, index)
        elif isinstance(msg, c.ChatCompletionToolMessageParam):
            self.tool_output(msg.tool_call_id, self.text_content(msg.content, where), where)
        else:
            self.function_output(msg, where)

    # content ---------------------------------------------------------------

    def name(self, name: str | None, where: str) -> None:
        if name is not None:
            self.diags.report(
                "dropped_param", "Open Responses messages have no `name`.", param=f"{where}.name"
            )

    def text_part(self, part: c.ChatCompletionContentPartTextParam, where: str) -> r.InputTextContent:
        if part.prompt_cache_breakpoint is not None:
            self.diags.report(
                "dropped_param",
                "Open Responses has no per-part cache breakpoints.",
                param=f"{where}.prompt_cache_breakpoint",
            )
        return r.InputTextContent(text=part.text)

    def text_content(
        self, content: str | list[c.ChatCompletionContentPartTextParam], where: str
    ) -> str | list[r.ContentPart]:
        if isinstance(content, str):
            return content
        return [self.text_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]

    def user_content(
        self, content: str | list[c.ChatCompletionContentPartParam], where: str
    ) -> str | list[r.ContentPart]:
        if isinstance(content, str):
            return content
        out: list[r.ContentPart] = []
        for j, part in enumerate(content):
            param = f"{where}.content[{j}]"
            if isinstance(part, c.ChatCompletionContentPartTextParam):
                out.append(self.text_part(part, param))
                continue
            if part.prompt_cache_breakpoint is not None:
                self.diags.report(
                    "dropped_param",
                    "Open Responses has no per-part cache breakpoints.",
                    param=f"{param}.prompt_cache_breakpoint",
                )
            if isinstance(part, c.ChatCompletionContentPartImageParam):
                out.append(r.InputImageContent(image_url=part.image_url.url, detail=self.detail(part, param)))
            elif isinstance(part, c.ChatCompletionContentPartInputAudioParam):
                audio = part.input_audio
                out.append(
                    r.InputAudioContent(input_audio=r.InputAudioData(data=audio.data, format=audio.format))
                )
            else:
                f = part.file
                out.append(
                    r.InputFileContent(
                        filename=f.filename if f.filename is not None else UNSET,
                        file_data=f.file_data if f.file_data is not None else UNSET,
                        file_id=f.file_id if f.file_id is not None else UNSET,
                    )
                )
        return out

    def detail(
        self, part: c.ChatCompletionContentPartImageParam, param: str
    ) -> Literal["low", "high", "auto"] | None:
        detail = part.image_url.detail
        if detail is None:
            return None
        if detail not in _DETAILS:
            self.diags.report(
                "lossy_value",
                f"Image detail {detail!r} is not low/high/auto; left out.",
                param=f"{param}.image_url.detail",
            )
        return _DETAILS.get(detail)

    # assistant turns and tool results -----------------------------------------

    def assistant(self, msg: c.ChatCompletionAssistantMessageParam, index: int) -> None:
        where = f"messages[{index}]"
        self.name(msg.name, where)
        if msg.audio is not None:
            self.diags.report(
                "dropped_param", "Earlier audio answers cannot be replayed.", param=f"{where}.audio"
            )
        if msg.reasoning_details is not None:
            self.diags.report(
                "dropped_param",
                "Vendor `reasoning_details` have no Open Responses form.",
                param=f"{where}.reasoning_details",
            )
        reasoning = msg.reasoning_content or msg.reasoning
        if index in self.recalled:  # what the upstream itself produced wins over the client's copy
            self.out.extend(self.recalled[index])
        elif reasoning:
            self.out.append(
                r.ReasoningItemParam(summary=[], content=[r.ReasoningTextContent(text=reasoning)])
            )
        parts: list[r.ContentPart] = []
        if isinstance(msg.content, str):
            if msg.content:
                parts.append(r.OutputTextContent(text=msg.content))
        elif msg.content is not None:
            for part in msg.content:
                if isinstance(part, c.ChatCompletionContentPartTextParam):
                    parts.append(r.OutputTextContent(text=part.text))
                else:
                    parts.append(r.RefusalContent(refusal=part.refusal))
        if msg.refusal and not any(
            isinstance(p, r.RefusalContent) and p.refusal == msg.refusal for p in parts
        ):
            parts.append(r.RefusalContent(refusal=msg.refusal))
        calls = self.calls(msg, index)
        if parts or not calls:
            self.out.append(
                r.MessageItemParam(role="assistant", content=parts or [r.OutputTextContent(text="")])
            )
        self.out.extend(calls)

    def calls(self, msg: c.ChatCompletionAssistantMessageParam, index: int) -> list[r.ItemParam]:
        out: list[r.ItemParam] = []
        for call in msg.tool_calls or ():
            if isinstance(call, c.ChatCompletionMessageFunctionToolCallParam):
                fn = call.function
                item, kind = native_call(call.id, fn.name, fn.arguments, self.declared)
                out.append(item)
            else:
                out.append(
                    r.CustomToolCallItemParam(call_id=call.id, name=call.custom.name, input=call.custom.input)
                )
                kind = "custom"
            if kind is not None:
                self.kinds[call.id] = kind
        if msg.function_call is not None:
            call_id = f"call_fn_{index}"  # deterministic: the same history always gets the same id
            self.legacy_calls[msg.function_call.name] = call_id
            fn = msg.function_call
            out.append(r.FunctionCallItemParam(call_id=call_id, name=fn.name, arguments=fn.arguments))
        return out

    def tool_output(self, call_id: str, output: str | list[r.ContentPart], where: str) -> None:
        self.out.append(native_output(call_id, self.kinds.get(call_id), output))

    def function_output(self, msg: c.ChatCompletionFunctionMessageParam, where: str) -> None:
        call_id = self.legacy_calls.pop(msg.name, None)
        if call_id is None:
            self.diags.report(
                "unsupported_item",
                f"No earlier `function_call` to {msg.name!r} answers this message.",
                param=where,
            )
            return
        self.out.append(r.FunctionCallOutputItemParam(call_id=call_id, output=msg.content or ""))


def messages_to_items(
    messages: list[c.ChatCompletionMessageParam],
    diags: Diagnostics,
    recalled: Mapping[int, list[r.ItemParam]] | None = None,
    declared: set[str] | None = None,
) -> list[r.ItemParam]:
    """The Chat history read into hub items (what the server stores as this turn's input).

    ``recalled``: reasoning items to put in front of the assistant message at that index.
    ``declared``: the request's function tool names (see ``_Items.declared``)."""
    builder = _Items(diags, recalled, declared)
    for i, msg in enumerate(messages):
        builder.add(msg, i)
    return builder.out


# ---------------------------------------------------------------------------------------------
# Tools, tool_choice, response_format
# ---------------------------------------------------------------------------------------------


def _function_tool(fn: c.FunctionDefinition) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "function", "name": fn.name}
    if fn.description is not None:
        tool["description"] = fn.description
    if fn.parameters is not None:
        tool["parameters"] = fn.parameters
    if fn.strict is not None:
        tool["strict"] = fn.strict
    return tool


def _tools(req: c.ChatCompletionRequest, diags: Diagnostics) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in req.tools or ():
        if isinstance(tool, c.ChatCompletionFunctionToolParam):
            out.append(_function_tool(tool.function))
        else:
            out.append(custom_tool(tool))
    if req.functions is not None:
        diags.report(
            "lossy_value",
            "Legacy `functions` are sent as function tools; calls come back as `tool_calls`.",
            param="functions",
        )
        out.extend(_function_tool(fn) for fn in req.functions)
    return out


def _allowed(
    choice: c.ChatCompletionAllowedToolChoiceParam, diags: Diagnostics
) -> r.AllowedToolsParam | None:
    allowed = choice.allowed_tools
    tools: list[r.SpecificToolParam] = []
    for j, tool in enumerate(allowed.tools):
        kind = tool.get("type")
        ref = tool.get(kind) if kind in ("function", "custom") else None
        name = ref.get("name") if isinstance(ref, dict) else None
        if isinstance(name, str):
            tools.append(
                r.SpecificCustomParam(name=name) if kind == "custom" else r.SpecificFunctionParam(name=name)
            )
        else:
            diags.report(
                "unsupported_tool",
                "Only function and custom tools can be allowed.",
                param=f"tool_choice.allowed_tools.tools[{j}]",
            )
    mode = _MODES.get(allowed.mode)
    if mode is None:
        diags.report(
            "lossy_value", f"Unknown allowed_tools mode {allowed.mode!r}; using auto.", param="tool_choice"
        )
    return r.AllowedToolsParam(tools=tools, mode=mode or "auto") if tools else None


def _tool_choice(req: c.ChatCompletionRequest, has_tools: bool, diags: Diagnostics) -> r.ToolChoice | None:
    choice: c.ChatCompletionToolChoiceOptionParam | c.ToolName | None = req.tool_choice
    param = "tool_choice"
    if choice is None and req.function_call is not None:
        choice, param = req.function_call, "function_call"
    elif req.function_call is not None:
        diags.report(
            "dropped_param", "`tool_choice` wins over the legacy `function_call`.", param="function_call"
        )
    out: r.ToolChoice | None
    if choice is None:
        return None
    if isinstance(choice, str):
        out = _MODES.get(choice)
    elif isinstance(choice, c.ChatCompletionNamedToolChoiceParam):
        out = r.SpecificFunctionParam(name=choice.function.name)
    elif isinstance(choice, c.ToolName):  # legacy ``function_call: {"name": ...}``
        out = r.SpecificFunctionParam(name=choice.name)
    elif isinstance(choice, c.ChatCompletionNamedToolChoiceCustomParam):
        out = r.SpecificCustomParam(name=choice.custom.name)
    else:
        out = _allowed(choice, diags)
    if out is None or has_tools or out == "none":  # "none" is meaningful even with no tools
        return out
    if out != "auto":  # "auto" with no tools means nothing; the rest would be an upstream 400
        diags.report("dropped_param", "A tool choice with no tools to choose from.", param=param)
    return None


def _text(req: c.ChatCompletionRequest, diags: Diagnostics) -> r.TextParam | None:
    fmt = req.response_format
    out: r.TextFormat | None = None
    if isinstance(fmt, c.ResponseFormatText):
        out = r.TextResponseFormat()
    elif isinstance(fmt, c.ResponseFormatJSONObject):
        out = r.JsonObjectResponseFormat()
    elif isinstance(fmt, c.ResponseFormatJSONSchema):
        js = fmt.json_schema
        out = r.JsonSchemaResponseFormat(
            name=js.name, description=js.description, schema=js.schema, strict=js.strict
        )
    verbosity = _VERBOSITY.get(req.verbosity) if req.verbosity is not None else None
    if req.verbosity is not None and verbosity is None:
        diags.report("lossy_value", f"Unknown verbosity {req.verbosity!r}; left out.", param="verbosity")
    if out is None and verbosity is None:
        return None
    return r.TextParam(format=out, verbosity=verbosity)


# ---------------------------------------------------------------------------------------------
# The request
# ---------------------------------------------------------------------------------------------


def _report_unsupported(req: c.ChatCompletionRequest, diags: Diagnostics) -> None:
    if req.logit_bias is not None:
        diags.report("dropped_param", "Open Responses has no logit_bias.", param="logit_bias")
    if req.audio is not None:
        diags.report("dropped_param", "Audio output is not supported over Open Responses.", param="audio")
    if req.modalities is not None and any(m != "text" for m in req.modalities):
        diags.report(
            "dropped_param", "Only text output is supported over Open Responses.", param="modalities"
        )
    if req.prediction is not None:
        diags.report("dropped_param", "Open Responses has no predicted outputs.", param="prediction")
    if req.web_search_options is not None:
        diags.report(
            "unsupported_tool", "Web search is not an Open Responses tool.", param="web_search_options"
        )
    if req.prompt_cache_options is not None:
        diags.report(
            "dropped_param", "Open Responses has no prompt_cache_options.", param="prompt_cache_options"
        )
    if req.prompt_cache_retention is not None:
        diags.report(
            "dropped_param", "Open Responses has no prompt_cache_retention.", param="prompt_cache_retention"
        )
    for key in req.extra:
        diags.report("dropped_param", f"Unknown parameter {key!r} is not sent upstream.", param=key)


def to_responses_request(
    req: c.ChatCompletionRequest,
    *,
    model: str,
    diags: Diagnostics,
    stream: bool,
    store: bool = False,
    recalled: Mapping[int, list[r.ItemParam]] | None = None,
) -> r.CreateResponseBody:
    """The whole Chat request as an Open Responses request for ``model`` (the upstream's name)."""
    if not req.messages:
        raise InvalidRequest("`messages` must not be empty.", param="messages", code="missing_input")
    check_chat_fields(req, diags)  # the table of every Chat field (translate/chat_request_fields.py)
    _report_unsupported(req, diags)
    tools = _tools(req, diags)
    declared = {t.function.name for t in req.tools or () if isinstance(t, c.ChatCompletionFunctionToolParam)}
    declared.update(fn.name for fn in req.functions or ())
    body = r.CreateResponseBody(model=model, input=messages_to_items(req.messages, diags, recalled, declared))
    body.tools = tools or None
    body.tool_choice = _tool_choice(req, bool(tools), diags)
    body.parallel_tool_calls = req.parallel_tool_calls
    body.text = _text(req, diags)
    if req.reasoning_effort is not None:
        effort = _EFFORTS.get(req.reasoning_effort)
        if effort is None:
            diags.report(
                "lossy_value",
                f"Unknown reasoning effort {req.reasoning_effort!r}; left out.",
                param="reasoning_effort",
            )
        else:
            body.reasoning = r.ReasoningParam(effort=effort)
    body.max_output_tokens = (
        req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    )
    copy_same_name(req, body, "to_responses")  # temperature, top_p, seed, user… (translate/parameters.py)
    if req.logprobs or req.top_logprobs is not None:
        body.include = [LOGPROBS_INCLUDE]
        body.top_logprobs = req.top_logprobs
    body.service_tier = req.service_tier
    body.store = store
    if stream:
        body.stream = True
        options = req.stream_options
        if options is not None and options.include_obfuscation is not None:
            body.stream_options = r.StreamOptionsParam(include_obfuscation=options.include_obfuscation)
    return body


# ---------------------------------------------------------------------------------------------
# Encoding for the upstream
# ---------------------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def _sparse(value: Any) -> Any:
    """Structs → dicts without ``None``/``UNSET`` fields; lists mapped; free-form JSON kept as is.
    A ``hosted_item`` is the item the client sent, unwrapped."""
    if isinstance(value, r.HostedItemParam):
        return value.item
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = {}
        config = value.__struct_config__
        if isinstance(config.tag_field, str):
            out[config.tag_field] = config.tag
        for name, wire in zip(value.__struct_fields__, value.__struct_encode_fields__, strict=True):
            field = getattr(value, name)
            if field is not None and field is not UNSET:
                out[wire] = _sparse(field)
        return out
    if isinstance(value, list):
        return [_sparse(v) for v in value]
    return value


def encode_create_response_body(body: r.CreateResponseBody) -> bytes:
    """The request as JSON for an Open Responses upstream, unset fields omitted."""
    return _encoder.encode(_sparse(body))

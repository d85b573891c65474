"""Open Responses request (the hub) → Chat Completions request, written for one dialect.

Readers accept everything; this writer emits exactly what the dialect's upstream wants. What
cannot be said in Chat goes to the diagnostics collector, never silently away.

Grouping rule: an assistant message followed by consecutive ``function_call`` items becomes
one assistant message with ``tool_calls`` (how Chat models were trained to see it), followed by
one ``tool`` message per ``function_call_output``. Reasoning items attach to the next assistant
message, replayed as the dialect says (a field, ``<think>`` text, or dropped).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from shim.core.diagnostics import Diagnostics
from shim.dialects.model import Dialect, RequestRules
from shim.errors import InvalidRequest, UnsupportedParameter
from shim.translate.parameters import copy_same_name
from shim.translate.replay import call_of, hosted_text, output_of
from shim.translate.tool_rounds import CALL_ITEMS, OUTPUT_ITEMS
from shim.translate.tools import ToolTable, client_tools, lower_tool_choice, lower_tools
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = ["ReasoningOpener", "alnum9", "to_chat_request"]

# Given a reasoning item sent back as input, return its text for replay (or None). The server
# passes one that can open sealed ``encrypted_content``; the default reads plain content only.
ReasoningOpener = Callable[[r.ReasoningItemParam], str | None]

_TEXT_PARTS = (
    r.InputTextContent,
    r.OutputTextContent,
    r.TextContent,
    r.SummaryTextContent,
    r.ReasoningTextContent,
)
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def alnum9(call_id: str) -> str:
    """A stable 9-character alphanumeric id for upstreams (Mistral) that accept nothing else."""
    if len(call_id) == 9 and call_id.isascii() and call_id.isalnum():
        return call_id
    n = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    out = []
    for _ in range(9):
        n, k = divmod(n, 62)
        out.append(_ALNUM[k])
    return "".join(out)


def plain_reasoning(item: r.ReasoningItemParam) -> str | None:
    if item.content:
        return "".join(part.text for part in item.content)
    if item.summary:
        return "\n\n".join(part.text for part in item.summary)
    return None


class _Messages:
    """Builds the Chat message list from hub items; one instance per request."""

    def __init__(self, dialect: Dialect, diags: Diagnostics, open_reasoning: ReasoningOpener) -> None:
        rules = dialect.request
        self.rules = rules
        self.think = (dialect.response.think_open, dialect.response.think_close)
        self.diags = diags
        self.open_reasoning = open_reasoning
        self.out: list[c.ChatCompletionMessageParam] = []
        self.pending_reasoning: list[str] = []
        self._call_ids = alnum9 if rules.tool_call_ids == "alnum9" else _same

    # content ---------------------------------------------------------------

    def parts(self, content: str | list[r.ContentPart], where: str, role: str) -> list[Any] | str:
        if isinstance(content, str):
            return content
        out: list[Any] = []
        modalities = self.rules.input_modalities
        for i, part in enumerate(content):
            param = f"{where}.content[{i}]"
            if isinstance(part, _TEXT_PARTS):
                out.append(c.ChatCompletionContentPartTextParam(text=part.text))
            elif isinstance(part, r.RefusalContent):
                if role == "assistant":
                    out.append(c.ChatCompletionContentPartRefusalParam(refusal=part.refusal))
                else:
                    out.append(c.ChatCompletionContentPartTextParam(text=part.refusal))
            elif isinstance(part, r.InputImageContent):
                if "image" not in modalities:
                    self.diags.report("unsupported_content", "This upstream accepts no images.", param=param)
                elif not part.image_url:
                    self.diags.report(
                        "unsupported_content", "Images by file_id cannot be sent upstream.", param=param
                    )
                else:
                    out.append(
                        c.ChatCompletionContentPartImageParam(
                            image_url=c.ImageURL(url=part.image_url, detail=part.detail)
                        )
                    )
            elif isinstance(part, r.InputFileContent):
                data = part.file_data if isinstance(part.file_data, str) else None
                file_id = part.file_id if isinstance(part.file_id, str) else None
                name = part.filename if isinstance(part.filename, str) else None
                if "file" not in modalities:
                    self.diags.report("unsupported_content", "This upstream accepts no files.", param=param)
                elif data is None and file_id is None:
                    self.diags.report(
                        "unsupported_content", "Files by URL cannot be sent to a Chat upstream.", param=param
                    )
                else:
                    out.append(
                        c.ChatCompletionContentPartFileParam(
                            file=c.FileFile(file_data=data, file_id=file_id, filename=name)
                        )
                    )
            elif isinstance(part, r.InputAudioContent):
                if "audio" not in modalities:
                    self.diags.report("unsupported_content", "This upstream accepts no audio.", param=param)
                else:
                    out.append(
                        c.ChatCompletionContentPartInputAudioParam(
                            input_audio=c.InputAudio(
                                data=part.input_audio.data, format=part.input_audio.format
                            )
                        )
                    )
            else:  # video: Chat Completions has no standard part for it
                self.diags.report(
                    "unsupported_content", f"{part.__class__.__name__} cannot be sent upstream.", param=param
                )
        return out

    def shaped(self, parts: list[Any] | str, style: str, where: str) -> Any:
        """Apply the dialect's string-or-array rule for this role."""
        if isinstance(parts, str):
            return parts
        if style == "string":
            texts = []
            for p in parts:
                if isinstance(p, c.ChatCompletionContentPartTextParam):
                    texts.append(p.text)
                elif isinstance(p, c.ChatCompletionContentPartRefusalParam):
                    texts.append(p.refusal)
                else:
                    self.diags.report(
                        "unsupported_content",
                        "This upstream takes only text content on this role.",
                        param=where,
                    )
            return "\n\n".join(texts)
        return parts

    # items -----------------------------------------------------------------

    def message(self, item: r.MessageItemParam, where: str) -> None:
        role = item.role
        rules = self.rules
        parts = self.parts(item.content, where, role)
        if role == "user":
            self.flush_reasoning_dropped()
            self.out.append(
                c.ChatCompletionUserMessageParam(content=self.shaped(parts, rules.user_content, where))
            )
        elif role == "system" or (role == "developer" and rules.developer_role == "system"):
            self.out.append(
                c.ChatCompletionSystemMessageParam(content=self.shaped(parts, rules.system_content, where))
            )
        elif role == "developer":
            self.out.append(
                c.ChatCompletionDeveloperMessageParam(content=self.shaped(parts, rules.system_content, where))
            )
        else:
            content = self.shaped(parts, rules.assistant_content, where)
            msg = c.ChatCompletionAssistantMessageParam(content=content)
            self.out.append(msg)
            self.attach_reasoning(msg)

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        call = c.ChatCompletionMessageFunctionToolCallParam(
            id=self._call_ids(call_id), function=c.Function(name=name, arguments=arguments)
        )
        last = self.out[-1] if self.out else None
        if isinstance(last, c.ChatCompletionAssistantMessageParam) and not self.pending_reasoning:
            last.tool_calls = [*(last.tool_calls or []), call]
            if self.rules.reasoning_replay_scope == "tool_calls":
                self._replay_stashed(last)
            return
        content = "" if self.rules.tool_calls_content == "empty" else None
        msg = c.ChatCompletionAssistantMessageParam(content=content, tool_calls=[call])
        self.out.append(msg)
        self.attach_reasoning(msg)

    def function_call_output(self, call_id: str, output: str | list[r.ContentPart], where: str) -> None:
        content = self.parts(output, where, "tool")
        shaped = self.shaped(content, self.rules.tool_content, where)
        self.out.append(
            c.ChatCompletionToolMessageParam(tool_call_id=self._call_ids(call_id), content=shaped)
        )

    def hosted(self, item: r.HostedItemParam, where: str) -> None:
        """A hosted tool's item: its text as an assistant note, or dropped; reported either way."""
        kind = item.item.get("type")
        text = hosted_text(item.item)
        if text is None:
            self.diags.report(
                "unsupported_item",
                f"A {kind!r} item has nothing a Chat upstream can read; dropped.",
                param=where,
            )
            return
        self.diags.report(
            "lossy_value", f"This upstream cannot run {kind!r}; the item is replayed as text.", param=where
        )
        msg = c.ChatCompletionAssistantMessageParam(content=text)
        self.out.append(msg)
        self.attach_reasoning(msg)

    def reasoning(self, item: r.ReasoningItemParam) -> None:
        text = self.open_reasoning(item)
        if text:
            self.pending_reasoning.append(text)

    def attach_reasoning(self, msg: c.ChatCompletionAssistantMessageParam) -> None:
        if not self.pending_reasoning:
            return
        text = "\n\n".join(self.pending_reasoning)
        self.pending_reasoning = []
        rules = self.rules
        if rules.reasoning_replay == "drop":
            return
        if rules.reasoning_replay_scope == "tool_calls" and not msg.tool_calls:
            # Kept aside: a function_call may still join this assistant message.
            self._stash = (msg, text)
            return
        self._write_reasoning(msg, text)

    _stash: tuple[c.ChatCompletionAssistantMessageParam, str] | None = None

    def _replay_stashed(self, msg: c.ChatCompletionAssistantMessageParam) -> None:
        if self._stash is not None and self._stash[0] is msg:
            self._write_reasoning(msg, self._stash[1])
            self._stash = None

    def _write_reasoning(self, msg: c.ChatCompletionAssistantMessageParam, text: str) -> None:
        rules = self.rules
        if rules.reasoning_replay == "think_tags":
            tagged = f"{self.think[0]}{text}{self.think[1]}\n\n"
            if isinstance(msg.content, list):
                msg.content = [c.ChatCompletionContentPartTextParam(text=tagged), *msg.content]
            else:
                msg.content = tagged + (msg.content or "")
        elif rules.reasoning_replay_field == "reasoning":
            msg.reasoning = text
        else:
            msg.reasoning_content = text

    def flush_reasoning_dropped(self) -> None:
        # Reasoning followed by no assistant turn (e.g. a cut history) has nowhere to go.
        self.pending_reasoning = []


def _same(call_id: str) -> str:
    return call_id


def request_tools(body: r.CreateResponseBody, items: list[r.ItemParam], diags: Diagnostics) -> ToolTable:
    """The lowering of the request's tools and those ``additional_tools`` items add."""
    tools = client_tools(body.tools, diags)
    for i, item in enumerate(items):
        if isinstance(item, r.AdditionalToolsItemParam):
            tools.extend(client_tools(item.tools, diags, param=f"input[{i}].tools"))
    return lower_tools(tools)


def _named_as_required(
    choice: Any, tools: list[c.ChatCompletionToolUnionParam], rules: RequestRules
) -> tuple[Any, list[c.ChatCompletionToolUnionParam]]:
    """``named_tool_choice = "required"``: "call this function" is "call a function" with only
    that one offered (llama-server reads ``tool_choice`` as a string only)."""
    if rules.named_tool_choice != "required" or not isinstance(choice, c.ChatCompletionNamedToolChoiceParam):
        return choice, tools
    name = choice.function.name
    named: list[c.ChatCompletionToolUnionParam] = [
        t for t in tools if isinstance(t, c.ChatCompletionFunctionToolParam) and t.function.name == name
    ]
    if not named:
        raise InvalidRequest(
            f"tool_choice names the function {name!r}, which is not among the tools.", param="tool_choice"
        )
    return "required", list(named)


def _required_as_named(choice: Any, tools: list[c.ChatCompletionToolUnionParam], rules: RequestRules) -> Any:
    """``required_tool_choice = "named"``: "call a function" with one function offered is "call
    this function"; with several the upstream has no way to say it."""
    if rules.required_tool_choice != "named" or choice != "required":
        return choice
    functions = [t for t in tools if isinstance(t, c.ChatCompletionFunctionToolParam)]
    if len(functions) != 1 or len(tools) != 1:
        raise UnsupportedParameter(
            'This upstream cannot make the model choose among several tools (tool_choice "required"); '
            "offer one tool, or name the function to call.",
            param="tool_choice",
        )
    return c.ChatCompletionNamedToolChoiceParam(function=c.ToolName(name=functions[0].function.name))


def _response_format(text: r.TextParam | None, rules: RequestRules, diags: Diagnostics) -> Any:
    fmt = text.format if text else None
    if fmt is None or isinstance(fmt, r.TextResponseFormat):
        return None, {}
    if isinstance(fmt, r.JsonObjectResponseFormat):
        if rules.json_object:
            return c.ResponseFormatJSONObject(), {}
        schema = c.JSONSchema(name="json_object", schema={"type": "object"})
        return c.ResponseFormatJSONSchema(json_schema=schema), {}
    if rules.json_schema:
        return (
            c.ResponseFormatJSONSchema(
                json_schema=c.JSONSchema(
                    name=fmt.name, description=fmt.description, schema=fmt.schema, strict=fmt.strict
                )
            ),
            {},
        )
    # Worded to be true under every policy: with SHIM_DIAGNOSTICS=error nothing is sent.
    diags.report(
        "lossy_value",
        "This upstream has no json_schema response format, only json_object (not strictly schema-bound).",
        param="text.format",
    )
    if rules.json_object_schema and fmt.schema is not None:
        return c.ResponseFormatJSONObject(), {"schema": fmt.schema}
    return c.ResponseFormatJSONObject(), {}


def to_chat_request(
    body: r.CreateResponseBody,
    items: list[r.ItemParam],
    *,
    model: str,
    dialect: Dialect,
    diags: Diagnostics,
    stream: bool,
    open_reasoning: ReasoningOpener = plain_reasoning,
) -> c.ChatCompletionRequest:
    """``items`` is the full input history (the server expands ``previous_response_id`` first).
    ``stream`` asks for a streamed upstream answer; the request says ``stream`` only where the
    dialect can stream it (``stream_auto_tool_choice``), else the caller replays a whole one."""
    rules = dialect.request
    table = request_tools(body, items, diags)
    builder = _Messages(dialect, diags, open_reasoning)
    if body.instructions:
        builder.out.append(c.ChatCompletionSystemMessageParam(content=body.instructions))
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if isinstance(item, r.MessageItemParam):
            builder.message(item, where)
        elif isinstance(item, CALL_ITEMS):
            builder.function_call(*call_of(item, table))
        elif isinstance(item, OUTPUT_ITEMS):
            builder.function_call_output(*output_of(item), where)
        elif isinstance(item, r.HostedItemParam):
            builder.hosted(item, where)
        elif isinstance(item, r.AdditionalToolsItemParam):
            pass  # its tools are in ``table``
        elif isinstance(item, r.ReasoningItemParam):
            builder.reasoning(item)
        elif isinstance(item, r.CompactionSummaryItemParam):
            diags.report("unsupported_item", "Compaction items need the shim's store.", param=where)
        else:
            raise InvalidRequest(f"Item reference {item.id!r} was not found.", param=where, code="not_found")
    if not builder.out:
        raise InvalidRequest("The request has no input.", param="input", code="missing_input")

    tool_choice, functions = lower_tool_choice(body.tool_choice, table, diags)
    tools: list[c.ChatCompletionToolUnionParam] = list(functions)
    tool_choice, tools = _named_as_required(tool_choice, tools, rules)
    tool_choice = _required_as_named(tool_choice, tools, rules)
    if tool_choice is None and tools and rules.explicit_tool_choice:
        tool_choice = "auto"  # the Open Responses default, said out loud
    if (
        tools
        and rules.tools_in_system_message
        and not any(isinstance(m, c.ChatCompletionSystemMessageParam) for m in builder.out)
    ):
        builder.out.insert(0, c.ChatCompletionSystemMessageParam(content=""))  # where tools are printed
    response_format, format_extra = _response_format(body.text, rules, diags)

    req = c.ChatCompletionRequest(model=model, messages=builder.out)
    req.tools = tools or None
    req.tool_choice = tool_choice if tools or tool_choice == "none" else None
    req.parallel_tool_calls = body.parallel_tool_calls if tools else None
    req.response_format = response_format
    if format_extra:
        req.extra["response_format"] = {"type": "json_object", **format_extra}
        req.response_format = None
    copy_same_name(body, req, "to_chat")  # temperature, top_p, seed, stop, user… (translate/parameters.py)
    req.service_tier = body.service_tier if body.service_tier not in (None, "auto", "default") else None
    if body.max_output_tokens is not None:
        if rules.max_tokens_field == "max_tokens":
            req.max_tokens = body.max_output_tokens
        else:
            req.max_completion_tokens = body.max_output_tokens
    wants_logprobs = bool(body.top_logprobs) or "message.output_text.logprobs" in (body.include or ())
    if wants_logprobs:
        req.logprobs = True
        req.top_logprobs = body.top_logprobs or None
    effort = body.reasoning.effort if body.reasoning else None
    if effort is not None:
        if rules.reasoning_effort == "reasoning_effort":
            req.reasoning_effort = effort
        elif rules.reasoning_effort == "reasoning_object":
            req.extra["reasoning"] = {"effort": effort}
        else:
            diags.report(
                "dropped_param", "This upstream takes no reasoning effort.", param="reasoning.effort"
            )
    if body.max_tool_calls is not None:
        diags.report("dropped_param", "Chat Completions has no max_tool_calls.", param="max_tool_calls")
    if stream and (rules.stream_auto_tool_choice or not (tools and tool_choice == "auto")):
        req.stream = True
        if rules.stream_usage:
            req.stream_options = c.ChatCompletionStreamOptions(include_usage=True)
    for name in rules.drop_params:
        if getattr(req, name, None) is not None:
            setattr(req, name, None)
            diags.report("dropped_param", f"This upstream rejects {name!r}.", param=name)
    if rules.extra_body:
        req.extra.update(rules.extra_body)
    return req

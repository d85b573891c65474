"""Open Responses events and resources (from a Responses upstream) → deltas.

Readers accept every alias ever seen: OpenAI's ``response.reasoning_text.*`` as well as the
spec's ``response.reasoning.*``; providers that skip deltas and send only ``*.done`` events or
whole items in ``output_item.done`` still yield their content exactly once.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shim.core.deltas import (
    Delta,
    ErrorDelta,
    FinishDelta,
    FinishReason,
    MetaDelta,
    ReasoningDelta,
    ReasoningEncryptedDelta,
    ReasoningSummaryDelta,
    RefusalDelta,
    TextDelta,
    TokenLogprob,
    ToolCallArgsDelta,
    ToolCallStartDelta,
    TopLogprob,
    UsageDelta,
)
from shim.translate.reverse_tools import CustomCallStartDelta, call_deltas
from shim.translate.tools import ToolTable
from shim.wire import responses as r

__all__ = ["ResponsesStreamReader", "read_resource", "usage_delta"]


class _Ev(msgspec.Struct):
    """The union of the fields we read from any event; unknown fields are ignored."""

    type: str = ""
    item_id: str | None = None
    output_index: int = 0
    content_index: int = 0
    summary_index: int = 0
    delta: str | None = None
    text: str | None = None
    refusal: str | None = None
    arguments: str | None = None
    input: str | None = None  # response.custom_tool_call_input.done
    logprobs: list[r.LogProb] | None = None
    item: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None


_ev_decoder = msgspec.json.Decoder(_Ev)


class _TextEv(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A ``response.output_text.delta`` event, most of any stream, with only the fields it has.

    Filling the ten other defaults of ``_Ev`` was a quarter of its decoding. A field not named
    here fails the decode and the event is read as ``_Ev`` (so what the two accept is the same:
    the shared fields have ``_Ev``'s types, which ``tests/test_responses_reader_fast.py``
    holds; ``Any`` where ``_Ev`` ignores the field).
    """

    type: str = ""
    item_id: str | None = None
    output_index: int = 0
    content_index: int = 0
    delta: str | None = None
    logprobs: list[r.LogProb] | None = None
    sequence_number: Any = None
    obfuscation: Any = None  # OpenAI pads its delta events with one


_text_decoder = msgspec.json.Decoder(_TextEv)
_TEXT_DELTA = "response.output_text.delta"


def _logprobs(items: list[r.LogProb] | None) -> list[TokenLogprob] | None:
    if not items:
        return None
    return [
        TokenLogprob(
            token=t.token,
            logprob=t.logprob,
            bytes=t.bytes or None,
            top_logprobs=[TopLogprob(x.token, x.logprob, x.bytes or None) for x in t.top_logprobs],
        )
        for t in items
    ]


def usage_delta(usage: r.Usage | None) -> UsageDelta | None:
    if usage is None:
        return None
    return UsageDelta(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.input_tokens_details.cached_tokens,
        reasoning_tokens=usage.output_tokens_details.reasoning_tokens,
    )


def _finish_of(resource: r.ResponseResource, saw_call: bool) -> Delta:
    if resource.status == "failed" or resource.error is not None:
        err = resource.error
        return ErrorDelta(
            message=err.message if err else "The upstream response failed.",
            code=err.code if err else "upstream_failed",
        )
    if resource.status == "incomplete":
        reason = resource.incomplete_details.reason if resource.incomplete_details else ""
        finish: FinishReason = "content_filter" if reason == "content_filter" else "length"
        return FinishDelta(finish)
    return FinishDelta("tool_calls" if saw_call else "stop")


def _item_deltas(item: r.ItemField, index: int) -> list[Delta]:
    """Everything one whole output item says, as deltas (for whole resources and late items)."""
    native = call_deltas(item, index)  # custom, apply_patch, shell, local_shell, namespaced calls
    if native is not None:
        return native
    out: list[Delta] = []
    if isinstance(item, r.Message):
        for part in item.content:
            if isinstance(part, r.OutputTextContent):
                lp = _logprobs(part.logprobs) if isinstance(part.logprobs, list) else None
                out.append(TextDelta(part.text, lp))
            elif isinstance(part, r.RefusalContent):
                out.append(RefusalDelta(part.refusal))
    elif isinstance(item, r.FunctionCall):
        out.append(ToolCallStartDelta(index, item.call_id, item.name))
        out.append(ToolCallArgsDelta(index, item.arguments))
    elif isinstance(item, r.ReasoningBody):
        for n, summary in enumerate(item.summary):
            out.append(ReasoningSummaryDelta(summary.text, n))
        if isinstance(item.content, list):
            out.extend(ReasoningDelta(c.text) for c in item.content)
        if isinstance(item.encrypted_content, str):
            out.append(ReasoningEncryptedDelta(item.encrypted_content))
    return out


def read_resource(resource: r.ResponseResource) -> list[Delta]:
    """A whole (non-streaming) upstream response as deltas."""
    out: list[Delta] = [MetaDelta(model=resource.model, upstream_id=resource.id, created=resource.created_at)]
    saw_call = False
    for index, item in enumerate(resource.output):
        saw_call = saw_call or isinstance(item, r.FunctionCall | r.ClientCall)
        out.extend(_item_deltas(item, index))
    usage = usage_delta(resource.usage)
    if usage is not None:
        out.append(usage)
    out.append(_finish_of(resource, saw_call))
    return out


_resource_fields = frozenset(r.ResponseResource.__struct_fields__)
_NO_TOOLS = ToolTable()
# Call items written whole (their arguments have no delta events): read at ``output_item.done``.
_WHOLE_CALLS = frozenset({"apply_patch_call", "shell_call", "local_shell_call"})


class ResponsesStreamReader:
    """Feed ``(event_type, data)`` pairs from an upstream SSE stream; get deltas."""

    def __init__(self) -> None:
        self._streamed: set[str] = set()  # item ids whose content arrived as deltas
        self._parts: set[tuple[str, str, int]] = set()  # (item id, "content"|"summary", index) seen
        self._calls: dict[str, int] = {}  # function-call item id → output index
        self._last_part: tuple[str, str, int] | None = None  # the part ``_mark`` saw last
        self._saw_call = False
        self._text_item: str | None = None  # the part ``text_of`` noted last
        self._text_index = -1
        self.done = False

    def feed(self, event_type: str | None, data: str | bytes) -> list[Delta]:
        if event_type == _TEXT_DELTA:
            try:
                text = _text_decoder.decode(data)
            except msgspec.DecodeError:
                pass  # another field, or a bad value: as any other event
            else:
                if text.type == _TEXT_DELTA or not text.type:
                    return self._text(text)
        ev = _ev_decoder.decode(data)
        kind = ev.type or event_type or ""
        handler = _HANDLERS.get(kind)
        if handler is None:
            return []
        return handler(self, ev)

    def text_of(self, data: str | bytes) -> str | None:
        """The text of a ``response.output_text.delta`` event's ``data`` when it is plain text
        (non-empty, no logprobs), read as ``feed`` would read it (the part noted as streamed);
        ``None``, with nothing noted, for anything else: give that event to ``feed``."""
        try:
            ev = _text_decoder.decode(data)
        except msgspec.DecodeError:
            return None
        text = ev.delta
        if not text or ev.logprobs or (ev.type and ev.type != _TEXT_DELTA):
            return None
        item_id = ev.item_id
        # The sets only grow, so a part noted by the last text delta needs no tuple built.
        if item_id is not None and (item_id != self._text_item or ev.content_index != self._text_index):
            self._text_item, self._text_index = item_id, ev.content_index
            part = (item_id, "content", ev.content_index)
            if part != self._last_part:
                self._last_part = part
                self._streamed.add(item_id)
                self._parts.add(part)
        return text

    # handlers -----------------------------------------------------------------

    def _created(self, ev: _Ev) -> list[Delta]:
        resp = ev.response or {}
        return [
            MetaDelta(model=resp.get("model"), upstream_id=resp.get("id"), created=resp.get("created_at"))
        ]

    def _item_added(self, ev: _Ev) -> list[Delta]:
        item = ev.item or {}
        kind = item.get("type")
        if kind == "function_call" or kind == "custom_tool_call":
            self._saw_call = True
            self._calls[item.get("id") or f"#{ev.output_index}"] = ev.output_index
            call_id, name = item.get("call_id") or "", item.get("name") or ""
            if isinstance(item.get("namespace"), str):  # as tools.py lowers it
                name = _NO_TOOLS.replay_name("function", name, item["namespace"])
            start = CustomCallStartDelta if kind == "custom_tool_call" else ToolCallStartDelta
            out: list[Delta] = [start(ev.output_index, call_id, name)]
            args = item.get("arguments" if kind == "function_call" else "input")
            if args:
                self._streamed.add(item.get("id") or f"#{ev.output_index}")
                out.append(ToolCallArgsDelta(ev.output_index, args))
            return out
        if kind in _WHOLE_CALLS:
            self._saw_call = True
        return []

    def _item_done(self, ev: _Ev) -> list[Delta]:
        raw = ev.item or {}
        item_id = raw.get("id") or f"#{ev.output_index}"
        try:
            item = msgspec.convert(raw, r.ItemField)
        except msgspec.ValidationError:
            return []
        if isinstance(item, r.FunctionCall | r.CustomToolCall):
            self._saw_call = True
            if item_id in self._streamed:
                return []
            if item_id in self._calls:
                args = item.arguments if isinstance(item, r.FunctionCall) else item.input
                return [ToolCallArgsDelta(ev.output_index, args)] if args else []
            return _item_deltas(item, ev.output_index)
        if isinstance(item, r.ReasoningBody):
            out: list[Delta] = []
            if item_id not in self._streamed:
                out = [
                    d
                    for d in _item_deltas(item, ev.output_index)
                    if not isinstance(d, ReasoningEncryptedDelta)
                ]
            if isinstance(item.encrypted_content, str):
                out.append(ReasoningEncryptedDelta(item.encrypted_content))
            return out
        if item_id in self._streamed:
            return []
        return _item_deltas(item, ev.output_index)

    def _text(self, ev: _Ev | _TextEv) -> list[Delta]:
        # ``_mark(ev)``, inline: this handler runs for nearly every event of a stream.
        item_id = ev.item_id
        if item_id is not None:
            part = (item_id, "content", ev.content_index)
            if part != self._last_part:
                self._last_part = part
                self._streamed.add(item_id)
                self._parts.add(part)
        text = ev.delta
        logprobs = ev.logprobs
        if not text and not logprobs:
            return []
        return [TextDelta(text or "", _logprobs(logprobs) if logprobs else None)]

    def _refusal(self, ev: _Ev) -> list[Delta]:
        self._mark(ev)
        return [RefusalDelta(ev.delta)] if ev.delta else []

    def _reasoning(self, ev: _Ev) -> list[Delta]:
        self._mark(ev)
        return [ReasoningDelta(ev.delta)] if ev.delta else []

    def _summary(self, ev: _Ev) -> list[Delta]:
        self._mark(ev, "summary")
        return [ReasoningSummaryDelta(ev.delta, ev.summary_index)] if ev.delta else []

    def _args(self, ev: _Ev) -> list[Delta]:
        self._mark(ev)
        return [ToolCallArgsDelta(ev.output_index, ev.delta)] if ev.delta else []

    def _args_done(self, ev: _Ev) -> list[Delta]:
        if ev.item_id is not None and ev.item_id not in self._streamed and ev.arguments:
            self._streamed.add(ev.item_id)
            return [ToolCallArgsDelta(ev.output_index, ev.arguments)]
        return []

    def _input_done(self, ev: _Ev) -> list[Delta]:
        if ev.item_id is not None and ev.item_id not in self._streamed and ev.input:
            self._streamed.add(ev.item_id)
            return [ToolCallArgsDelta(ev.output_index, ev.input)]
        return []

    # Providers that send only ``*.done`` events: take each part's whole text once. Parts are
    # tracked one by one, so a second done-only part (or a done-only refusal after streamed
    # text) in the same item is not lost.

    def _done_part(self, ev: _Ev, text: str | None, key: str = "content") -> bool:
        if ev.item_id is None or not text:
            return False
        part = (ev.item_id, key, ev.summary_index if key == "summary" else ev.content_index)
        if part in self._parts:
            return False
        self._mark(ev, key)
        return True

    def _text_done(self, ev: _Ev) -> list[Delta]:
        return [TextDelta(ev.text or "", _logprobs(ev.logprobs))] if self._done_part(ev, ev.text) else []

    def _refusal_done(self, ev: _Ev) -> list[Delta]:
        return [RefusalDelta(ev.refusal or "")] if self._done_part(ev, ev.refusal) else []

    def _reasoning_done(self, ev: _Ev) -> list[Delta]:
        return [ReasoningDelta(ev.text or "")] if self._done_part(ev, ev.text) else []

    def _summary_done(self, ev: _Ev) -> list[Delta]:
        if not self._done_part(ev, ev.text, "summary"):
            return []
        return [ReasoningSummaryDelta(ev.text or "", ev.summary_index)]

    def _terminal(self, ev: _Ev) -> list[Delta]:
        self.done = True
        raw = dict(ev.response or {})
        raw.setdefault("id", "")
        raw.setdefault("created_at", 0)
        raw.setdefault("model", "")
        raw["output"] = []  # items were read as they streamed
        raw.setdefault(
            "status",
            {"response.completed": "completed", "response.failed": "failed"}.get(ev.type, "incomplete"),
        )
        try:
            resource = msgspec.convert(
                {k: v for k, v in raw.items() if k in _resource_fields}, r.ResponseResource
            )
        except msgspec.ValidationError:
            resource = r.ResponseResource(id="", created_at=0, model="", status=raw["status"])
        out: list[Delta] = []
        usage = usage_delta(resource.usage)
        if usage is not None:
            out.append(usage)
        out.append(_finish_of(resource, self._saw_call))
        return out

    def _error(self, ev: _Ev) -> list[Delta]:
        err = ev.error or {}
        return [
            ErrorDelta(
                message=err.get("message") or ev.message or "The upstream reported an error.",
                type=err.get("type") or "server_error",
                code=err.get("code") or ev.code,
                param=err.get("param"),
            )
        ]

    def _mark(self, ev: _Ev, key: str = "content") -> None:
        item_id = ev.item_id
        if item_id is not None:
            part = (item_id, key, ev.summary_index if key == "summary" else ev.content_index)
            # Consecutive deltas of one part are the common case: the sets (which only grow)
            # already hold it.
            if part != self._last_part:
                self._last_part = part
                self._streamed.add(item_id)
                self._parts.add(part)


_HANDLERS = {
    "response.created": ResponsesStreamReader._created,
    "response.output_item.added": ResponsesStreamReader._item_added,
    "response.output_item.done": ResponsesStreamReader._item_done,
    "response.output_text.delta": ResponsesStreamReader._text,
    "response.output_text.done": ResponsesStreamReader._text_done,
    "response.refusal.delta": ResponsesStreamReader._refusal,
    "response.refusal.done": ResponsesStreamReader._refusal_done,
    "response.reasoning.delta": ResponsesStreamReader._reasoning,
    "response.reasoning_text.delta": ResponsesStreamReader._reasoning,
    "response.reasoning.done": ResponsesStreamReader._reasoning_done,
    "response.reasoning_text.done": ResponsesStreamReader._reasoning_done,
    "response.reasoning_summary_text.delta": ResponsesStreamReader._summary,
    "response.reasoning_summary_text.done": ResponsesStreamReader._summary_done,
    "response.function_call_arguments.delta": ResponsesStreamReader._args,
    "response.function_call_arguments.done": ResponsesStreamReader._args_done,
    "response.custom_tool_call_input.delta": ResponsesStreamReader._args,
    "response.custom_tool_call_input.done": ResponsesStreamReader._input_done,
    "response.completed": ResponsesStreamReader._terminal,
    "response.incomplete": ResponsesStreamReader._terminal,
    "response.failed": ResponsesStreamReader._terminal,
    "error": ResponsesStreamReader._error,
}

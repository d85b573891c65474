"""Deltas → Open Responses streaming events and the final ``ResponseResource``.

Every lifecycle rule of the spec lives here and nowhere else: output indexes, stable item ids,
content parts, ``*.done`` events, sequence numbers, the terminal event, the final snapshot. The
writer knows no vendor names. A non-streaming response is this writer fed a stream of one; its
``response`` is the body.

Parallel tool calls are emitted one item after another. Upstreams may interleave argument
chunks of several calls, so once one call is open, later calls are held back (their arguments
buffered) and emitted whole when the open call is closed. Sequential upstreams lose nothing:
the first call still streams delta by delta.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from msgspec import UNSET

from shim.core.deltas import (
    Delta,
    ErrorDelta,
    FinishDelta,
    FinishReason,
    ReasoningDelta,
    ReasoningEncryptedDelta,
    ReasoningSummaryDelta,
    RefusalDelta,
    TextDelta,
    TokenLogprob,
    ToolCallArgsDelta,
    ToolCallStartDelta,
    UsageDelta,
)
from shim.ids import Clock, IdFactory
from shim.translate.tools import Lowered, ToolTable, fitting_call_id, lower_tools, raise_call
from shim.wire import responses as r

__all__ = ["ResponsesStreamWriter", "text_frame", "to_logprobs", "usage_of"]

_json = msgspec.json.Encoder().encode
# A text delta event is encoded once with these in its ``sequence_number`` and ``delta`` to learn
# where they go (``text_frame``: ``ResponsesStreamWriter.texts_sse``, ``RoundMerger.texts``).
_SEQ_PROBE = str(7_302_915_846_113)
_TEXT_PROBE = "\x00shim-text-probe\x00"
_TEXT_PROBE_JSON = _json(_TEXT_PROBE).decode()
_TEXT_DELTA_SSE = "event: response.output_text.delta\ndata: "


def text_frame(like: r.ResponseOutputTextDeltaStreamingEvent) -> tuple[str, str, str] | None:
    """The SSE text of a text delta of ``like``'s part around its delta and sequence number: the
    event encoded once with probes, since a JSON number or string can be swapped for another
    without changing anything around it. ``None`` if a probe shows up twice (an item id holding
    the number, say): those texts go the long way."""
    probe = msgspec.structs.replace(like, sequence_number=int(_SEQ_PROBE), delta=_TEXT_PROBE, logprobs=[])
    data = _json(probe).decode()
    if data.count(_SEQ_PROBE) != 1 or data.count(_TEXT_PROBE_JSON) != 1:
        return None
    # ``sequence_number`` is written last (a keyword-only field of the base struct).
    head, _, rest = data.partition(_TEXT_PROBE_JSON)
    mid, found, tail = rest.partition(_SEQ_PROBE)
    if not found:  # the sequence number before the delta
        return None
    return _TEXT_DELTA_SSE + head, mid, tail + "\n\n"


def to_logprobs(items: list[TokenLogprob]) -> list[r.LogProb]:
    return [
        r.LogProb(
            token=t.token,
            logprob=t.logprob,
            bytes=t.bytes or [],
            top_logprobs=[
                r.TopLogProb(token=x.token, logprob=x.logprob, bytes=x.bytes or []) for x in t.top_logprobs
            ],
        )
        for t in items
    ]


def usage_of(u: UsageDelta) -> r.Usage:
    """The response's ``usage`` for the upstream's counts."""
    return r.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        total_tokens=u.input_tokens + u.output_tokens,
        input_tokens_details=r.InputTokensDetails(cached_tokens=u.cached_tokens),
        output_tokens_details=r.OutputTokensDetails(reasoning_tokens=u.reasoning_tokens),
    )


# A streamed text is kept as its pieces until the part closes; every _LOOSE pieces are joined
# into one string, so an open stream holds its text rather than a string object (~60 bytes)
# per token (bench/README.md, "memory per open stream"). ``joined``: how many leading entries
# are already joined blocks (each char is copied once more, never again).
_LOOSE = 16


def _compact(pieces: list[str], joined: int) -> int:
    pieces[joined:] = ["".join(pieces[joined:])]
    return joined + 1


class _Message:
    __slots__ = ("content", "id", "index", "joined", "kind", "logprobs", "parts")

    def __init__(self, item_id: str, index: int) -> None:
        self.id = item_id
        self.index = index
        self.parts: list[r.ContentPart] = []
        self.kind: str | None = None  # "text" | "refusal": the open content part
        self.content: list[str] = []
        self.joined = 0  # see _compact
        self.logprobs: list[r.LogProb] = []


class _Reasoning:
    __slots__ = ("encrypted", "id", "index", "joined", "summary", "summary_open", "text", "text_open")

    def __init__(self, item_id: str, index: int) -> None:
        self.id = item_id
        self.index = index
        self.text: list[str] = []
        self.joined = 0  # see _compact
        self.text_open = False
        self.summary: list[list[str]] = []
        self.summary_open = False
        self.encrypted: str | None = None


class _Call:
    __slots__ = ("args", "call_id", "id", "index", "joined", "lowered", "name")

    def __init__(self, item_id: str, call_id: str, name: str, lowered: Lowered | None = None) -> None:
        self.id = item_id
        self.call_id = call_id
        self.name = name
        self.args: list[str] = []
        self.joined = 0  # see _compact
        self.index = -1
        # The client tool a lowered function stands for (None: a plain function tool).
        self.lowered = lowered

    @property
    def deferred(self) -> bool:
        """Native items other than ``function_call`` need their whole arguments to be written
        (``apply_patch_call.operation``…): they are emitted when the call closes."""
        return self.lowered is not None and self.lowered.kind != "function"


_Open = _Message | _Reasoning | _Call


# Item id prefixes, as OpenAI's: ``ctc_`` custom, ``apc_`` apply_patch, ``sh_`` shell, ``lsh_`` local shell.
_PREFIX = {"function": "fc", "custom": "ctc", "apply_patch": "apc", "shell": "sh", "local_shell": "lsh"}


class ResponsesStreamWriter:
    """Feed deltas, get events. ``start()`` first, ``finish()`` last, then read ``response``."""

    def __init__(
        self,
        template: r.ResponseResource,
        *,
        ids: IdFactory,
        clock: Clock,
        include_logprobs: bool = False,
    ) -> None:
        self._template = template
        self._ids = ids
        self._clock = clock
        self._include_logprobs = include_logprobs
        self._seq = 0
        self._output: list[r.ItemField] = []
        self._open: _Open | None = None
        self._calls: dict[int, _Call] = {}
        self._held: list[_Call] = []
        self._usage: UsageDelta | None = None
        self._finish: FinishReason | None = None
        self._error: ErrorDelta | None = None
        self.finished = False
        self.response = template
        # The SSE frame of a text delta in the open text part (``texts_sse``): the message it
        # was learnt for, that part's index, and the text around the delta and sequence number.
        self._frame: tuple[_Message, int, str, str, str] | None = None
        # Client tools other than plain functions were lowered: their calls are raised back.
        tools = template.tools
        plain = not tools or all(isinstance(t, r.FunctionTool) for t in tools)
        self._table: ToolTable | None = None if plain else lower_tools(tools)

    # ------------------------------------------------------------------ public API

    def start(self) -> list[r.StreamingEvent]:
        snap = self._template
        return [
            r.ResponseCreatedStreamingEvent(sequence_number=self._next(), response=snap),
            r.ResponseInProgressStreamingEvent(sequence_number=self._next(), response=snap),
        ]

    def feed(self, delta: Delta) -> list[r.StreamingEvent]:
        out: list[r.StreamingEvent] = []
        self._feed(delta, out)
        return out

    def feed_all(
        self, deltas: Iterable[Delta], out: list[r.StreamingEvent] | None = None
    ) -> list[r.StreamingEvent]:
        """The events for ``deltas``, appended to ``out`` when given (saves a list per delta)."""
        if out is None:
            out = []
        feed = self._feed
        text = self._text
        for delta in deltas:
            if isinstance(delta, TextDelta):  # most of any stream: one call less
                text(delta, out)
            else:
                feed(delta, out)
        return out

    def texts_sse(self, texts: list[str]) -> str | None:
        """The SSE text of the ``response.output_text.delta`` events ``feed_all`` would give for
        these non-empty texts without logprobs, noted as it notes them, when a text part is open;
        otherwise ``None`` and nothing noted (feed them as deltas). Issue 18: no event struct is
        built or encoded; ``tests/test_forward_text_fast.py`` holds it to ``encode_tagged``."""
        msg = self._open
        if type(msg) is not _Message or msg.kind != "text":
            return None
        frame = self._frame
        if frame is None or frame[0] is not msg or frame[1] != len(msg.parts):
            frame = self._frame = self._learn_frame(msg)
            if frame is None:
                return None
        _, _, head, mid, tail = frame
        content = msg.content
        seq = self._seq
        parts: list[str] = []
        for text in texts:
            content.append(text)
            if len(content) - msg.joined >= _LOOSE:
                msg.joined = _compact(content, msg.joined)
            if '"' in text or "\\" in text or not text.isprintable():
                parts.append(f"{head}{_json(text).decode()}{mid}{seq}{tail}")
            else:  # the text is its own JSON string's body
                parts.append(f'{head}"{text}"{mid}{seq}{tail}')
            seq += 1
        self._seq = seq
        return "".join(parts)

    def _learn_frame(self, msg: _Message) -> tuple[_Message, int, str, str, str] | None:
        # The event encoded once with probes: a JSON number or string can be swapped for another
        # without changing anything around it. ``None`` if a probe shows up twice (an item id
        # holding the number, say): those texts go the long way.
        index = len(msg.parts)
        event = r.ResponseOutputTextDeltaStreamingEvent(
            sequence_number=0,
            item_id=msg.id,
            output_index=msg.index,
            content_index=index,
            delta="",
            logprobs=[],
        )
        frame = text_frame(event)
        return None if frame is None else (msg, index, *frame)

    def _feed(self, delta: Delta, out: list[r.StreamingEvent]) -> None:
        if isinstance(delta, TextDelta):
            self._text(delta, out)
        elif isinstance(delta, ReasoningDelta):
            self._reasoning_text(delta.text, out)
        elif isinstance(delta, ToolCallArgsDelta):
            self._call_args(delta, out)
        elif isinstance(delta, ToolCallStartDelta):
            self._call_start(delta, out)
        elif isinstance(delta, RefusalDelta):
            self._refusal(delta.text, out)
        elif isinstance(delta, ReasoningSummaryDelta):
            self._reasoning_summary(delta, out)
        elif isinstance(delta, ReasoningEncryptedDelta):
            reasoning = self._ensure_reasoning(out)
            reasoning.encrypted = delta.encrypted_content
        elif isinstance(delta, UsageDelta):
            self._usage = delta
        elif isinstance(delta, FinishDelta):
            self._finish = delta.reason
        elif isinstance(delta, ErrorDelta):
            self._error = delta

    def finish(self) -> list[r.StreamingEvent]:
        """Close what is open and emit the terminal event. Idempotent."""
        if self.finished:
            return []
        self.finished = True
        out: list[r.StreamingEvent] = []
        incomplete = self._error is None and self._finish in ("length", "content_filter")
        self._close(out, status="incomplete" if incomplete and not self._held else "completed")
        self._flush_held(out, last_status="incomplete" if incomplete else "completed")
        now = self._clock()
        snap = self._snapshot()
        if self._error is not None:
            err = self._error
            snap.status = "failed"
            snap.error = r.ResponseError(code=err.code or err.type, message=err.message)
            self.response = snap
            out.append(
                r.ErrorStreamingEvent(
                    sequence_number=self._next(),
                    error=r.ErrorPayload(type=err.type, code=err.code, message=err.message, param=err.param),
                )
            )
            out.append(r.ResponseFailedStreamingEvent(sequence_number=self._next(), response=self.response))
        elif incomplete:
            reason = "max_output_tokens" if self._finish == "length" else "content_filter"
            snap.status = "incomplete"
            snap.incomplete_details = r.IncompleteDetails(reason=reason)
            self.response = snap
            out.append(r.ResponseIncompleteStreamingEvent(sequence_number=self._next(), response=snap))
        else:
            snap.status = "completed"
            snap.completed_at = now
            self.response = snap
            out.append(r.ResponseCompletedStreamingEvent(sequence_number=self._next(), response=snap))
        return out

    def fail(self, error: ErrorDelta) -> list[r.StreamingEvent]:
        """An error from outside the stream (upstream dropped, timeout): close and fail.

        An error the stream already carried (an in-band ``{"error": ...}`` chunk) is kept: it is
        the cause, and the outside error (the upstream closing right after it) its consequence.
        """
        if self._error is None:
            self._error = error
        return self.finish()

    def add_item(self, item: r.ItemField) -> list[r.StreamingEvent]:
        """A finished item the shim made itself (``context_management``'s compaction item): added
        and done at once; the items that follow it are numbered after it."""
        out: list[r.StreamingEvent] = []
        self._close(out)
        index = self._add(item, out)
        out.append(
            r.ResponseOutputItemDoneStreamingEvent(
                sequence_number=self._next(), output_index=index, item=item
            )
        )
        return out

    @property
    def output(self) -> list[r.ItemField]:
        return self._output

    # ------------------------------------------------------------------ helpers

    def _next(self) -> int:
        n = self._seq
        self._seq = n + 1
        return n

    def _snapshot(self) -> r.ResponseResource:
        snap = msgspec.structs.replace(self._template, output=list(self._output))
        if self._usage is not None:
            snap.usage = usage_of(self._usage)
        return snap

    def _close(self, out: list[r.StreamingEvent], status: r.Status = "completed") -> None:
        item = self._open
        if item is None:
            return
        self._open = None
        if isinstance(item, _Message):
            self._close_part(item, out)
            done: r.ItemField = r.Message(
                id=item.id, status=status, role="assistant", content=list(item.parts)
            )
        elif isinstance(item, _Reasoning):
            self._close_reasoning_parts(item, out)
            done = self._reasoning_item(item)
        else:
            done = self._close_call(item, status, out)
        self._output[item.index] = done
        out.append(
            r.ResponseOutputItemDoneStreamingEvent(
                sequence_number=self._next(), output_index=item.index, item=done
            )
        )

    def _add(self, item: r.ItemField, out: list[r.StreamingEvent]) -> int:
        index = len(self._output)
        self._output.append(item)
        out.append(
            r.ResponseOutputItemAddedStreamingEvent(
                sequence_number=self._next(), output_index=index, item=item
            )
        )
        return index

    # messages ----------------------------------------------------------------

    def _ensure_message(self, out: list[r.StreamingEvent]) -> _Message:
        item = self._open
        if isinstance(item, _Message):
            return item
        self._close(out)
        self._flush_held(out)
        msg = _Message(self._ids("msg"), len(self._output))
        self._add(r.Message(id=msg.id, status="in_progress", role="assistant", content=[]), out)
        self._open = msg
        return msg

    def _open_part(self, msg: _Message, kind: str, out: list[r.StreamingEvent]) -> None:
        if msg.kind == kind:
            return
        self._close_part(msg, out)
        msg.kind = kind
        msg.content = []
        msg.joined = 0
        msg.logprobs = []
        part: r.ContentPart = (
            r.OutputTextContent(text="", annotations=[], logprobs=[] if self._include_logprobs else UNSET)
            if kind == "text"
            else r.RefusalContent(refusal="")
        )
        out.append(
            r.ResponseContentPartAddedStreamingEvent(
                sequence_number=self._next(),
                item_id=msg.id,
                output_index=msg.index,
                content_index=len(msg.parts),
                part=part,
            )
        )

    def _close_part(self, msg: _Message, out: list[r.StreamingEvent]) -> None:
        if msg.kind is None:
            return
        text = "".join(msg.content)
        index = len(msg.parts)
        part: r.ContentPart
        if msg.kind == "text":
            logprobs = msg.logprobs if self._include_logprobs else []
            out.append(
                r.ResponseOutputTextDoneStreamingEvent(
                    sequence_number=self._next(),
                    item_id=msg.id,
                    output_index=msg.index,
                    content_index=index,
                    text=text,
                    logprobs=logprobs,
                )
            )
            part = r.OutputTextContent(
                text=text, annotations=[], logprobs=logprobs if self._include_logprobs else UNSET
            )
        else:
            out.append(
                r.ResponseRefusalDoneStreamingEvent(
                    sequence_number=self._next(),
                    item_id=msg.id,
                    output_index=msg.index,
                    content_index=index,
                    refusal=text,
                )
            )
            part = r.RefusalContent(refusal=text)
        out.append(
            r.ResponseContentPartDoneStreamingEvent(
                sequence_number=self._next(),
                item_id=msg.id,
                output_index=msg.index,
                content_index=index,
                part=part,
            )
        )
        msg.parts.append(part)
        msg.kind = None

    def _text(self, delta: TextDelta, out: list[r.StreamingEvent]) -> None:
        text = delta.text
        if not text and not delta.logprobs:
            return
        msg = self._open
        # The hot path (a text part already open) makes no helper calls.
        if not isinstance(msg, _Message) or msg.kind != "text":
            msg = self._ensure_message(out)
            self._open_part(msg, "text", out)
        content = msg.content
        content.append(text)
        if len(content) - msg.joined >= _LOOSE:
            msg.joined = _compact(content, msg.joined)
        logprobs: list[r.LogProb] = []
        if self._include_logprobs and delta.logprobs:
            logprobs = to_logprobs(delta.logprobs)
            msg.logprobs.extend(logprobs)
        seq = self._seq
        self._seq = seq + 1
        out.append(
            r.ResponseOutputTextDeltaStreamingEvent(
                sequence_number=seq,
                item_id=msg.id,
                output_index=msg.index,
                content_index=len(msg.parts),
                delta=text,
                logprobs=logprobs,
            )
        )

    def _refusal(self, text: str, out: list[r.StreamingEvent]) -> None:
        if not text:
            return
        msg = self._ensure_message(out)
        self._open_part(msg, "refusal", out)
        msg.content.append(text)
        if len(msg.content) - msg.joined >= _LOOSE:
            msg.joined = _compact(msg.content, msg.joined)
        out.append(
            r.ResponseRefusalDeltaStreamingEvent(
                sequence_number=self._next(),
                item_id=msg.id,
                output_index=msg.index,
                content_index=len(msg.parts),
                delta=text,
            )
        )

    # reasoning ---------------------------------------------------------------

    def _ensure_reasoning(self, out: list[r.StreamingEvent]) -> _Reasoning:
        item = self._open
        if isinstance(item, _Reasoning):
            return item
        self._close(out)
        self._flush_held(out)
        rs = _Reasoning(self._ids("rs"), len(self._output))
        self._add(r.ReasoningBody(id=rs.id, summary=[], content=[]), out)
        self._open = rs
        return rs

    def _reasoning_text(self, text: str, out: list[r.StreamingEvent]) -> None:
        if not text:
            return
        rs = self._ensure_reasoning(out)
        if rs.summary_open:
            self._close_summary(rs, out)
        if not rs.text_open:
            rs.text_open = True
            out.append(
                r.ResponseContentPartAddedStreamingEvent(
                    sequence_number=self._next(),
                    item_id=rs.id,
                    output_index=rs.index,
                    content_index=0,
                    part=r.ReasoningTextContent(text=""),
                )
            )
        rs.text.append(text)
        if len(rs.text) - rs.joined >= _LOOSE:
            rs.joined = _compact(rs.text, rs.joined)
        out.append(
            r.ResponseReasoningDeltaStreamingEvent(
                sequence_number=self._next(),
                item_id=rs.id,
                output_index=rs.index,
                content_index=0,
                delta=text,
            )
        )

    def _reasoning_summary(self, delta: ReasoningSummaryDelta, out: list[r.StreamingEvent]) -> None:
        if not delta.text:
            return
        rs = self._ensure_reasoning(out)
        if rs.summary_open and delta.summary_index >= len(rs.summary):
            self._close_summary(rs, out)
        if not rs.summary_open:
            rs.summary.append([])
            rs.summary_open = True
            out.append(
                r.ResponseReasoningSummaryPartAddedStreamingEvent(
                    sequence_number=self._next(),
                    item_id=rs.id,
                    output_index=rs.index,
                    summary_index=len(rs.summary) - 1,
                    part=r.SummaryTextContent(text=""),
                )
            )
        rs.summary[-1].append(delta.text)
        out.append(
            r.ResponseReasoningSummaryDeltaStreamingEvent(
                sequence_number=self._next(),
                item_id=rs.id,
                output_index=rs.index,
                summary_index=len(rs.summary) - 1,
                delta=delta.text,
            )
        )

    def _close_summary(self, rs: _Reasoning, out: list[r.StreamingEvent]) -> None:
        rs.summary_open = False
        index = len(rs.summary) - 1
        text = "".join(rs.summary[index])
        out.append(
            r.ResponseReasoningSummaryDoneStreamingEvent(
                sequence_number=self._next(),
                item_id=rs.id,
                output_index=rs.index,
                summary_index=index,
                text=text,
            )
        )
        out.append(
            r.ResponseReasoningSummaryPartDoneStreamingEvent(
                sequence_number=self._next(),
                item_id=rs.id,
                output_index=rs.index,
                summary_index=index,
                part=r.SummaryTextContent(text=text),
            )
        )

    def _close_reasoning_parts(self, rs: _Reasoning, out: list[r.StreamingEvent]) -> None:
        if rs.summary_open:
            self._close_summary(rs, out)
        if rs.text:
            text = "".join(rs.text)
            out.append(
                r.ResponseReasoningDoneStreamingEvent(
                    sequence_number=self._next(),
                    item_id=rs.id,
                    output_index=rs.index,
                    content_index=0,
                    text=text,
                )
            )
            out.append(
                r.ResponseContentPartDoneStreamingEvent(
                    sequence_number=self._next(),
                    item_id=rs.id,
                    output_index=rs.index,
                    content_index=0,
                    part=r.ReasoningTextContent(text=text),
                )
            )

    def _reasoning_item(self, rs: _Reasoning) -> r.ReasoningBody:
        return r.ReasoningBody(
            id=rs.id,
            summary=[r.SummaryTextContent(text="".join(s)) for s in rs.summary],
            content=[r.ReasoningTextContent(text="".join(rs.text))] if rs.text else [],
            encrypted_content=rs.encrypted if rs.encrypted is not None else UNSET,
        )

    # tool calls --------------------------------------------------------------

    def _call_start(self, delta: ToolCallStartDelta, out: list[r.StreamingEvent]) -> None:
        if delta.index in self._calls:
            return
        lowered = self._table.lowered(delta.name) if self._table is not None else None
        if lowered is not None and lowered.kind == "function" and lowered.namespace is None:
            lowered = None  # a plain function tool
        call = _Call(
            self._ids(_PREFIX[lowered.kind] if lowered else "fc"),
            fitting_call_id(delta.call_id),
            delta.name,
            lowered,
        )
        self._calls[delta.index] = call
        if isinstance(self._open, _Call):
            self._held.append(call)
            return
        self._close(out)
        self._flush_held(out)
        self._emit_call_added(call, out)
        self._open = call

    def _emit_call_added(self, call: _Call, out: list[r.StreamingEvent]) -> None:
        if call.deferred:
            return
        item: r.ItemField = r.FunctionCall(
            id=call.id, call_id=call.call_id, name=call.name, arguments="", status="in_progress"
        )
        if call.lowered is not None:  # a namespace member: the bare name and its namespace
            item = (
                raise_call(
                    call.lowered, item_id=call.id, call_id=call.call_id, arguments="", status="in_progress"
                )
                or item
            )
        call.index = self._add(item, out)

    def _close_call(self, call: _Call, status: r.Status, out: list[r.StreamingEvent]) -> r.ItemField:
        """The call's closing events and its final item, raised to the native type if lowered."""
        args = "".join(call.args)
        raised = (
            raise_call(call.lowered, item_id=call.id, call_id=call.call_id, arguments=args, status=status)
            if call.lowered is not None
            else None
        )
        if call.deferred:
            call.index = len(self._output)  # the open item: nothing was added after it
            if raised is None:  # arguments that form no native item: kept as the plain call
                fallback = r.FunctionCall(
                    id=call.id, call_id=call.call_id, name=call.name, arguments="", status="in_progress"
                )
                self._add(fallback, out)
                if args:
                    out.append(
                        r.ResponseFunctionCallArgumentsDeltaStreamingEvent(
                            sequence_number=self._next(), item_id=call.id, output_index=call.index, delta=args
                        )
                    )
            elif isinstance(raised, r.CustomToolCall):
                self._add(msgspec.structs.replace(raised, input=""), out)
                if raised.input:
                    out.append(
                        r.ResponseCustomToolCallInputDeltaStreamingEvent(
                            sequence_number=self._next(),
                            item_id=call.id,
                            output_index=call.index,
                            delta=raised.input,
                        )
                    )
                out.append(
                    r.ResponseCustomToolCallInputDoneStreamingEvent(
                        sequence_number=self._next(),
                        item_id=call.id,
                        output_index=call.index,
                        input=raised.input,
                    )
                )
                return raised
            else:
                self._add(msgspec.structs.replace(raised, status="in_progress"), out)
                return raised
        out.append(
            r.ResponseFunctionCallArgumentsDoneStreamingEvent(
                sequence_number=self._next(), item_id=call.id, output_index=call.index, arguments=args
            )
        )
        if raised is not None:
            return raised
        return r.FunctionCall(id=call.id, call_id=call.call_id, name=call.name, arguments=args, status=status)

    def _call_args(self, delta: ToolCallArgsDelta, out: list[r.StreamingEvent]) -> None:
        call = self._calls.get(delta.index)
        if call is None or not delta.arguments:
            return
        call.args.append(delta.arguments)
        if len(call.args) - call.joined >= _LOOSE:
            call.joined = _compact(call.args, call.joined)
        if call is self._open and not call.deferred:
            out.append(
                r.ResponseFunctionCallArgumentsDeltaStreamingEvent(
                    sequence_number=self._next(),
                    item_id=call.id,
                    output_index=call.index,
                    delta=delta.arguments,
                )
            )

    def _flush_held(self, out: list[r.StreamingEvent], last_status: r.Status = "completed") -> None:
        held, self._held = self._held, []
        for n, call in enumerate(held):
            self._emit_call_added(call, out)
            args = "".join(call.args)
            if args and not call.deferred:
                out.append(
                    r.ResponseFunctionCallArgumentsDeltaStreamingEvent(
                        sequence_number=self._next(), item_id=call.id, output_index=call.index, delta=args
                    )
                )
            self._open = call
            self._close(out, status=last_status if n == len(held) - 1 else "completed")

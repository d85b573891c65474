"""One response from several upstream rounds, sans-IO: the events a client sees.

Each round is the ordinary writer's events (``ResponsesStreamWriter``); this merger makes one
response of them: ``response.created`` / ``in_progress`` once, output indexes and sequence
numbers continuous over rounds, a hosted tool's ``function_call`` (``hosted_tools.py``) turned
into its item (``mcp_call`` with ``response.mcp_call_arguments.*``, ``mcp_approval_request``,
``web_search_call``), every round's terminal event held back until the last, usage summed, and
``url_citation`` annotations where the answer names a URL a web search returned. The IO (running
the calls, asking the upstream again) is ``shim/turns/hosted_loop.py``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from shim.ids import Clock, IdFactory
from shim.translate.responses_writer import text_frame
from shim.wire import responses as r

__all__ = ["HostedCallState", "RoundMerger"]

Kind = Literal["mcp", "approval", "web_search"]
# (namespace, name) of a raised function call → what the hosted tool is, or None (a client's).
Classify = Callable[[str, str], Kind | None]

# The classes ``feed`` tells apart, as tuples made once: ``A | B`` in an ``isinstance`` builds a
# union object per call, for every event of every round (bench/README.md, issue 18).
_TEXT_DELTA = r.ResponseOutputTextDeltaStreamingEvent
_OPENING = (r.ResponseCreatedStreamingEvent, r.ResponseInProgressStreamingEvent)
_TERMINAL = (
    r.ResponseCompletedStreamingEvent,
    r.ResponseIncompleteStreamingEvent,
    r.ResponseFailedStreamingEvent,
)
_ARGUMENTS = (
    r.ResponseFunctionCallArgumentsDeltaStreamingEvent,
    r.ResponseFunctionCallArgumentsDoneStreamingEvent,
)
_CALLS = (r.FunctionCall, *r.ClientCall.__args__)

_json = msgspec.json.Encoder().encode


@dataclass
class HostedCallState:
    kind: Kind
    index: int  # in the merged output
    item_id: str
    call_id: str  # the upstream's, for the tool message
    label: str
    name: str
    arguments: str = ""


def _add_usage(a: r.Usage | None, b: r.Usage | None) -> r.Usage | None:
    if a is None or b is None:
        return a or b
    return r.Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        total_tokens=a.total_tokens + b.total_tokens,
        input_tokens_details=r.InputTokensDetails(
            cached_tokens=a.input_tokens_details.cached_tokens + b.input_tokens_details.cached_tokens
        ),
        output_tokens_details=r.OutputTokensDetails(
            reasoning_tokens=a.output_tokens_details.reasoning_tokens
            + b.output_tokens_details.reasoning_tokens
        ),
    )


def _query(arguments: str) -> str:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    query = value.get("query") if isinstance(value, dict) else None
    return query if isinstance(query, str) else arguments


class RoundMerger:
    def __init__(
        self,
        template: r.ResponseResource,
        *,
        ids: IdFactory,
        clock: Clock,
        classify: Classify,
        sources: bool = False,
    ) -> None:
        self.template = template
        self._with_sources = sources  # include: ["web_search_call.action.sources"]
        self._ids, self._clock, self._classify = ids, clock, classify
        self._seq = 0
        self.output: list[r.ItemField] = []
        self.usage: r.Usage | None = None
        self.response = template
        self.finished = False
        self.pending: list[HostedCallState] = []  # calls to run before the next round
        self.asked_approval = False  # this round asked the client: no next round
        self.client_calls = False  # this round called a client's tool: no next round
        self.sources: list[str] = []  # URLs web searches returned
        self._round: dict[str, HostedCallState] = {}
        self._offset = 0
        self._held: r.StreamingEvent | None = None  # the round's terminal event
        self._annotations: dict[tuple[str, int], list[r.UrlCitationBody]] = {}
        # ``texts``' SSE frame: the part it was learnt for (item id, output index, content
        # index), then the text around the delta and the sequence number (None: a probe clashed).
        self._frame: tuple[tuple[str, int, int], tuple[str, str, str] | None] | None = None

    def _next(self) -> int:
        n = self._seq
        self._seq = n + 1
        return n

    def start(self) -> list[r.StreamingEvent]:
        return [
            r.ResponseCreatedStreamingEvent(sequence_number=self._next(), response=self.template),
            r.ResponseInProgressStreamingEvent(sequence_number=self._next(), response=self.template),
        ]

    # -------------------------------------------------------------- items the loop adds itself

    def finished_item(self, item: r.ItemField) -> list[r.StreamingEvent]:
        """An item made whole before the first round (``context_management``'s compaction)."""
        index = len(self.output)
        self.output.append(item)
        return [
            r.ResponseOutputItemAddedStreamingEvent(
                sequence_number=self._next(), output_index=index, item=item
            ),
            r.ResponseOutputItemDoneStreamingEvent(
                sequence_number=self._next(), output_index=index, item=item
            ),
        ]

    def listed(self, item: r.McpListTools) -> list[r.StreamingEvent]:
        """An ``mcp_list_tools`` item (the listing already happened, before the first round)."""
        index = len(self.output)
        self.output.append(item)
        return [
            r.ResponseOutputItemAddedStreamingEvent(
                sequence_number=self._next(), output_index=index, item=msgspec.structs.replace(item, tools=[])
            ),
            r.ResponseMcpListToolsInProgressStreamingEvent(
                sequence_number=self._next(), item_id=item.id, output_index=index
            ),
            r.ResponseMcpListToolsCompletedStreamingEvent(
                sequence_number=self._next(), item_id=item.id, output_index=index
            ),
            r.ResponseOutputItemDoneStreamingEvent(
                sequence_number=self._next(), output_index=index, item=item
            ),
        ]

    def approved(self, call: r.McpCall) -> list[r.StreamingEvent]:
        """A call the client approved, run before the first round: its whole life at once."""
        index = len(self.output)
        started = msgspec.structs.replace(call, status="in_progress", output=None, error=None)
        self.output.append(call)
        return [
            r.ResponseOutputItemAddedStreamingEvent(
                sequence_number=self._next(), output_index=index, item=started
            ),
            r.ResponseMcpCallArgumentsDoneStreamingEvent(
                sequence_number=self._next(), item_id=call.id, output_index=index, arguments=call.arguments
            ),
            *self._call_end(call, index),
        ]

    def _call_end(self, item: r.McpCall, index: int) -> list[r.StreamingEvent]:
        ended: r.StreamingEvent = (
            r.ResponseMcpCallFailedStreamingEvent(
                sequence_number=self._next(), item_id=item.id, output_index=index
            )
            if item.status == "failed"
            else r.ResponseMcpCallCompletedStreamingEvent(
                sequence_number=self._next(), item_id=item.id, output_index=index
            )
        )
        return [
            ended,
            r.ResponseOutputItemDoneStreamingEvent(
                sequence_number=self._next(), output_index=index, item=item
            ),
        ]

    # ------------------------------------------------------------------------------ rounds

    def begin_round(self) -> None:
        self._offset = len(self.output)
        self._round = {}
        self.pending = []
        self._held = None

    def feed(self, events: list[r.StreamingEvent]) -> list[r.StreamingEvent]:
        out: list[r.StreamingEvent] = []
        for event in events:
            if type(event) is _TEXT_DELTA:  # most of a round's events: renumbered, nothing else
                event.output_index += self._offset
                event.sequence_number = self._next()
                out.append(event)
                continue
            if isinstance(event, _OPENING):
                continue
            if isinstance(event, _TERMINAL):
                self._terminal(event, out)
                continue
            if isinstance(event, r.ResponseOutputItemAddedStreamingEvent):
                if self._added(event, out):
                    continue
            elif isinstance(event, r.ResponseOutputItemDoneStreamingEvent):
                if self._done(event, out):
                    continue
            elif isinstance(event, _ARGUMENTS):
                call = self._round.get(event.item_id)
                if call is not None:
                    if call.kind == "mcp":
                        out.append(self._mcp_args(event, call))
                    continue
            elif isinstance(event, r.ResponseOutputTextDoneStreamingEvent) and self.sources:
                self._annotate(event, out)
            elif isinstance(event, r.ResponseContentPartDoneStreamingEvent):
                found = self._annotations.get((event.item_id, event.content_index))
                if found and isinstance(event.part, r.OutputTextContent):
                    event.part.annotations = found  # the same part object the final item holds
            if hasattr(event, "output_index"):
                event.output_index += self._offset
            event.sequence_number = self._next()
            out.append(event)
        return out

    def texts(
        self, like: r.ResponseOutputTextDeltaStreamingEvent, texts: list[str]
    ) -> list[r.StreamingEvent | bytes]:
        """The merged ``response.output_text.delta`` events of more non-empty ``texts`` (no
        logprobs) in the part of ``like`` (its last merged text delta), numbered next: one run of
        SSE bytes, as ``encode_tagged`` writes each (issue 18: no event struct built, renumbered
        or encoded; the round's writer noted the texts). Structs if the part cannot be framed."""
        part = (like.item_id, like.output_index, like.content_index)
        frame = self._frame
        if frame is None or frame[0] != part:
            frame = self._frame = (part, text_frame(like))
        seq = self._seq
        self._seq = seq + len(texts)
        around = frame[1]
        if around is None:  # the long way: an item id holding a probe
            return [
                msgspec.structs.replace(like, sequence_number=n, delta=text, logprobs=[])
                for n, text in enumerate(texts, seq)
            ]
        head, mid, tail = around
        parts: list[str] = []
        for text in texts:
            if '"' in text or "\\" in text or not text.isprintable():
                parts.append(f"{head}{_json(text).decode()}{mid}{seq}{tail}")
            else:  # the text is its own JSON string's body
                parts.append(f'{head}"{text}"{mid}{seq}{tail}')
            seq += 1
        return ["".join(parts).encode()]

    def _mcp_args(
        self,
        event: r.ResponseFunctionCallArgumentsDeltaStreamingEvent
        | r.ResponseFunctionCallArgumentsDoneStreamingEvent,
        call: HostedCallState,
    ) -> r.StreamingEvent:
        if isinstance(event, r.ResponseFunctionCallArgumentsDeltaStreamingEvent):
            return r.ResponseMcpCallArgumentsDeltaStreamingEvent(
                sequence_number=self._next(), item_id=call.item_id, output_index=call.index, delta=event.delta
            )
        return r.ResponseMcpCallArgumentsDoneStreamingEvent(
            sequence_number=self._next(),
            item_id=call.item_id,
            output_index=call.index,
            arguments=event.arguments,
        )

    def _added(self, event: r.ResponseOutputItemAddedStreamingEvent, out: list[r.StreamingEvent]) -> bool:
        item = event.item
        index = self._offset + event.output_index
        kind = (
            self._classify(item.namespace, item.name)
            if isinstance(item, r.FunctionCall) and isinstance(item.namespace, str)
            else None
        )
        if kind is None:
            if isinstance(item, _CALLS):
                self.client_calls = True
            self.output.append(item)
            return False
        assert isinstance(item, r.FunctionCall) and isinstance(item.namespace, str)
        prefix = {"mcp": "mcp", "approval": "mcpr", "web_search": "ws"}[kind]
        call = HostedCallState(kind, index, self._ids(prefix), item.call_id, item.namespace, item.name)
        self._round[item.id] = call
        if kind == "mcp":
            hosted: r.ItemField = r.McpCall(
                id=call.item_id, server_label=call.label, name=call.name, arguments="", status="in_progress"
            )
            self.output.append(hosted)
            out.append(
                r.ResponseOutputItemAddedStreamingEvent(
                    sequence_number=self._next(), output_index=index, item=hosted
                )
            )
        else:
            self.output.append(item)  # a placeholder: the item is written once its arguments are whole
        return True

    def _done(self, event: r.ResponseOutputItemDoneStreamingEvent, out: list[r.StreamingEvent]) -> bool:
        item = event.item
        index = self._offset + event.output_index
        call = self._round.get(item.id)
        if call is None:
            self.output[index] = item
            return False
        call.arguments = item.arguments if isinstance(item, r.FunctionCall) else ""
        if call.kind == "mcp":
            self.output[index] = r.McpCall(
                id=call.item_id,
                server_label=call.label,
                name=call.name,
                arguments=call.arguments,
                status="in_progress",
            )
            self.pending.append(call)
        elif call.kind == "approval":
            request = r.McpApprovalRequest(
                id=call.item_id, server_label=call.label, name=call.name, arguments=call.arguments
            )
            self.output[index] = request
            self.asked_approval = True
            out += [
                r.ResponseOutputItemAddedStreamingEvent(
                    sequence_number=self._next(), output_index=index, item=request
                ),
                r.ResponseOutputItemDoneStreamingEvent(
                    sequence_number=self._next(), output_index=index, item=request
                ),
            ]
        else:
            search = r.WebSearchCall(
                id=call.item_id, action=r.WebSearchAction(query=_query(call.arguments)), status="in_progress"
            )
            self.output[index] = search
            self.pending.append(call)
            out.append(
                r.ResponseOutputItemAddedStreamingEvent(
                    sequence_number=self._next(), output_index=index, item=search
                )
            )
        return True

    def _terminal(self, event: r.StreamingEvent, out: list[r.StreamingEvent]) -> None:
        assert isinstance(event, _TERMINAL)
        self.usage = _add_usage(self.usage, event.response.usage)
        if isinstance(event, r.ResponseCompletedStreamingEvent) and self.pending:
            self._held = event  # the calls run first
            return
        for call in self.pending:  # a failed or cut round: its calls never run
            item = self.output[call.index]
            stopped = msgspec.structs.replace(item, status="incomplete")
            self.output[call.index] = stopped
            out.append(
                r.ResponseOutputItemDoneStreamingEvent(
                    sequence_number=self._next(), output_index=call.index, item=stopped
                )
            )
        self.pending = []
        out.append(self._final(event))

    def _final(self, event: r.StreamingEvent) -> r.StreamingEvent:
        assert isinstance(event, _TERMINAL)
        snap = msgspec.structs.replace(
            event.response, output=list(self.output), usage=self.usage, tools=self.template.tools
        )
        self.response = snap
        self.finished = True
        event.response = snap
        event.sequence_number = self._next()
        return event

    # ---------------------------------------------------------------------- running calls

    def call_started(self, call: HostedCallState) -> list[r.StreamingEvent]:
        index, item_id = call.index, call.item_id
        if call.kind == "web_search":
            return [
                r.ResponseWebSearchCallInProgressStreamingEvent(
                    sequence_number=self._next(), item_id=item_id, output_index=index
                ),
                r.ResponseWebSearchCallSearchingStreamingEvent(
                    sequence_number=self._next(), item_id=item_id, output_index=index
                ),
            ]
        return [
            r.ResponseMcpCallInProgressStreamingEvent(
                sequence_number=self._next(), item_id=item_id, output_index=index
            )
        ]

    def call_finished(
        self,
        call: HostedCallState,
        output: str | None,
        error: dict[str, Any] | None,
        sources: tuple[str, ...] = (),
    ) -> list[r.StreamingEvent]:
        index = call.index
        if call.kind == "web_search":
            item = self.output[index]
            assert isinstance(item, r.WebSearchCall)
            found = [r.WebSearchSource(url=u) for u in sources] if self._with_sources else []
            action = msgspec.structs.replace(item.action, sources=found) if found else item.action
            done = msgspec.structs.replace(item, action=action, status="failed" if error else "completed")
            self.sources += [u for u in sources if u not in self.sources]
            self.output[index] = done
            return [
                r.ResponseWebSearchCallCompletedStreamingEvent(
                    sequence_number=self._next(), item_id=call.item_id, output_index=index
                ),
                r.ResponseOutputItemDoneStreamingEvent(
                    sequence_number=self._next(), output_index=index, item=done
                ),
            ]
        mcp = r.McpCall(
            id=call.item_id,
            server_label=call.label,
            name=call.name,
            arguments=call.arguments,
            status="failed" if error else "completed",
            output=output,
            error=error,
        )
        self.output[index] = mcp
        return self._call_end(mcp, index)

    def close(self) -> list[r.StreamingEvent]:
        """The held terminal event, now the response's (no further round)."""
        assert self._held is not None
        return [self._final(self._held)]

    def fail(self, error: r.ErrorPayload) -> list[r.StreamingEvent]:
        """A failure between rounds (the next round could not be asked)."""
        snap = msgspec.structs.replace(
            self.template,
            output=list(self.output),
            usage=self.usage,
            status="failed",
            error=r.ResponseError(code=error.code or error.type, message=error.message),
        )
        self.response = snap
        self.finished = True
        return [
            r.ErrorStreamingEvent(sequence_number=self._next(), error=error),
            r.ResponseFailedStreamingEvent(sequence_number=self._next(), response=snap),
        ]

    # ----------------------------------------------------------------------- annotations

    def _annotate(self, event: r.ResponseOutputTextDoneStreamingEvent, out: list[r.StreamingEvent]) -> None:
        found: list[r.UrlCitationBody] = []
        for url in self.sources:
            start = event.text.find(url)
            if start >= 0:
                found.append(
                    r.UrlCitationBody(url=url, start_index=start, end_index=start + len(url), title=url)
                )
        found.sort(key=lambda a: a.start_index)
        for n, annotation in enumerate(found):
            out.append(
                r.ResponseOutputTextAnnotationAddedStreamingEvent(
                    sequence_number=self._next(),
                    item_id=event.item_id,
                    output_index=self._offset + event.output_index,
                    content_index=event.content_index,
                    annotation_index=n,
                    annotation=annotation,
                )
            )
        if found:
            self._annotations[(event.item_id, event.content_index)] = found

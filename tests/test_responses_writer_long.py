"""Long streams through the Responses writer: the text it joins is the text it was fed.

An open part keeps its text as pieces, every 16 of them joined into one string (memory per open
stream, bench/README.md); these rows cross that boundary for each kind of streamed text, with
non-ASCII pieces, and check every delta event, every ``*.done`` text and the final resource.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from shim.core.deltas import (
    Delta,
    FinishDelta,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStartDelta,
)
from shim.ids import CountingIds, fixed_clock
from shim.translate import responses_writer
from shim.translate.responses_writer import ResponsesStreamWriter
from shim.wire import responses as r


def _pieces(n: int, tag: str) -> list[str]:
    return [f"{tag}{i}é✓ " if i % 7 else f"{tag}{i}🙂" for i in range(n)]


def _writer() -> ResponsesStreamWriter:
    template = r.ResponseResource(id="resp_1", created_at=1, model="m")
    return ResponsesStreamWriter(template, ids=CountingIds(), clock=fixed_clock())


def _run(deltas: Sequence[Delta]) -> tuple[list[r.StreamingEvent], r.ResponseResource]:
    writer = _writer()
    events = writer.start() + writer.feed_all(deltas) + writer.finish()
    return events, writer.response


@pytest.mark.parametrize("n", [1, 15, 16, 17, 32, 33, 1000])
def test_message_text_is_every_piece_in_order(n: int) -> None:
    pieces = _pieces(n, "t")
    events, resource = _run([TextDelta(p) for p in pieces] + [FinishDelta("stop")])
    deltas = [e.delta for e in events if isinstance(e, r.ResponseOutputTextDeltaStreamingEvent)]
    done = [e.text for e in events if isinstance(e, r.ResponseOutputTextDoneStreamingEvent)]
    assert deltas == pieces
    assert done == ["".join(pieces)]
    message = resource.output[0]
    assert isinstance(message, r.Message)
    part = message.content[0]
    assert isinstance(part, r.OutputTextContent)
    assert part.text == "".join(pieces)


@pytest.mark.parametrize("n", [17, 300])
def test_refusal_then_text_keep_their_own_pieces(n: int) -> None:
    refusal, text = _pieces(n, "r"), _pieces(n, "t")
    deltas: list[Delta] = [RefusalDelta(p) for p in refusal]
    deltas += [TextDelta(p) for p in text]
    events, resource = _run(deltas)
    assert [e.refusal for e in events if isinstance(e, r.ResponseRefusalDoneStreamingEvent)] == [
        "".join(refusal)
    ]
    assert [e.text for e in events if isinstance(e, r.ResponseOutputTextDoneStreamingEvent)] == [
        "".join(text)
    ]
    message = resource.output[0]
    assert isinstance(message, r.Message)
    assert [type(p).__name__ for p in message.content] == ["RefusalContent", "OutputTextContent"]


@pytest.mark.parametrize("n", [16, 17, 500])
def test_reasoning_text_is_every_piece_in_order(n: int) -> None:
    pieces = _pieces(n, "think")
    events, resource = _run([ReasoningDelta(p) for p in pieces] + [TextDelta("ok")])
    assert [e.delta for e in events if isinstance(e, r.ResponseReasoningDeltaStreamingEvent)] == pieces
    assert [e.text for e in events if isinstance(e, r.ResponseReasoningDoneStreamingEvent)] == [
        "".join(pieces)
    ]
    reasoning = resource.output[0]
    assert isinstance(reasoning, r.ReasoningBody)
    assert isinstance(reasoning.content, list)
    assert [c.text for c in reasoning.content] == ["".join(pieces)]


@pytest.mark.parametrize("n", [16, 17, 400])
def test_call_arguments_are_every_piece_in_order(n: int) -> None:
    pieces = ['{"a": "', *_pieces(n, "x"), '"}']
    deltas: list[Delta] = [ToolCallStartDelta(0, "call_1", "f")]
    deltas += [ToolCallArgsDelta(0, p) for p in pieces]
    events, resource = _run([*deltas, FinishDelta("tool_calls")])
    streamed = [e.delta for e in events if isinstance(e, r.ResponseFunctionCallArgumentsDeltaStreamingEvent)]
    assert streamed == pieces
    call = resource.output[0]
    assert isinstance(call, r.FunctionCall)
    assert call.arguments == "".join(pieces)


def test_held_call_arguments_come_out_whole() -> None:
    """A second call interleaved with the first is held; its many pieces are emitted as one delta."""
    first, second = _pieces(100, "a"), _pieces(100, "b")
    deltas: list[Delta] = [ToolCallStartDelta(0, "call_1", "f"), ToolCallStartDelta(1, "call_2", "g")]
    for a, b in zip(first, second, strict=True):
        deltas += [ToolCallArgsDelta(0, a), ToolCallArgsDelta(1, b)]
    _, resource = _run([*deltas, FinishDelta("tool_calls")])
    calls = [item for item in resource.output if isinstance(item, r.FunctionCall)]
    assert [c.arguments for c in calls] == ["".join(first), "".join(second)]


def test_an_open_part_holds_a_block_per_16_pieces_not_a_string_per_token() -> None:
    writer = _writer()
    writer.start()
    writer.feed_all([TextDelta(p) for p in _pieces(1000, "t")])
    message = writer._open
    assert isinstance(message, responses_writer._Message)
    # 1000 pieces: 62 joined blocks of 16 and 8 loose pieces
    assert len(message.content) == 1000 // 16 + 1000 % 16
    assert "".join(message.content) == "".join(_pieces(1000, "t"))

"""The reverse driver's short way for plain text deltas (``ResponsesStreamReader.text_of`` →
``ChatStreamWriter.text_chunk``, no delta between) against the general one (``feed`` →
``feed_all``): the same chunk bytes, completion, reasoning items, usage and upstream id, for
every recorded Open Responses stream and for generated streams mixing text deltas of every
shape with reasoning, refusals, errors and the end, in each reasoning mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.core.deltas import ErrorDelta
from shim.translate import chat_over_responses
from shim.translate.chat_over_responses import ChatChoiceDriver
from shim.translate.chat_over_responses import sse as sse_of
from shim.translate.chat_writer import ChatStreamWriter, ReasoningMode
from shim.wire import chat as c
from tests.test_responses_reader_fast import text_event

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "chat_over_responses"
STREAMS = sorted(ROOT.rglob("upstream*.sse"))
MODES: list[ReasoningMode] = ["reasoning_content", "reasoning", "think_tags"]


def outcome(
    chunks: list[bytes],
    *,
    short: bool,
    mode: ReasoningMode = "reasoning_content",
    model: str | None = "m",
    stops: list[str] | None = None,
    choice: int = 0,
    as_sse: bool = False,
    include_usage: bool = True,
    fail_after: int | None = None,
) -> list[Any]:
    """What a stream through the driver gives; ``as_sse``: its bytes as the server writes them
    (``feed_sse``), else its chunks' bytes (``feed``) and their SSE."""
    with pytest.MonkeyPatch.context() as patch:
        if not short:
            patch.setattr(chat_over_responses, "_TEXT_DELTA", "(never)")
        driver = ChatChoiceDriver(
            completion_id="chatcmpl-t",
            created=1,
            model=model,
            reasoning=mode,
            include_usage=include_usage,
            stops=stops,
            choice=choice,
        )
        failure = ErrorDelta(message="gone", code="upstream_gone")
        if as_sse:
            written = [sse_of(driver.start())]
            for n, chunk in enumerate(chunks):
                written.append(driver.feed_sse(chunk))
                if n == fail_after:  # an error from outside, then more bytes (a late batch)
                    written.append(sse_of(driver.fail(failure)))
            written.append(sse_of(driver.finish()))
            wrote: Any = b"".join(written)
        else:
            out = driver.start()
            for n, chunk in enumerate(chunks):
                out += driver.feed(chunk)
                if n == fail_after:
                    out += driver.fail(failure)
            out += driver.finish()
            wrote = [[c.encode_chunk(chunk) for chunk in out], sse_of(out)]
        return [
            wrote,
            msgspec.json.encode(driver.completion),
            msgspec.json.encode(driver.reasoning_items()),
            driver.usage,
            driver.upstream_id,
            driver.stopped,
            driver.error,
            (driver.reader._streamed, driver.reader._parts),  # what the reader noted
        ]


def same_three_ways(chunks: list[bytes], **options: Any) -> list[Any]:
    """The short way, the general way and ``feed_sse`` agree; the short way's outcome."""
    short = outcome(chunks, short=True, **options)
    assert short == outcome(chunks, short=False, **options)
    written = outcome(chunks, short=True, as_sse=True, **options)
    assert written[0] == short[0][1]  # the SSE of the general way's chunks
    assert written[1:] == short[1:]
    return short


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_corpus_has_streams() -> None:
    assert len(STREAMS) >= 10


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", STREAMS, ids=[str(p.relative_to(ROOT)) for p in STREAMS])
def test_recorded_streams_write_the_same(path: Path, mode: ReasoningMode) -> None:
    chunks = split(path.read_bytes(), 97)
    short = same_three_ways(chunks, mode=mode)
    assert short[0][0]  # the stream wrote chunks


def sse(event_type: str | None, data: str) -> bytes:
    head = f"event: {event_type}\n" if event_type is not None else ""
    return f"{head}data: {data}\n\n".encode()


def ev(kind: str, **fields: Any) -> tuple[str, str]:
    return kind, json.dumps({"type": kind, **fields})


OTHERS = [
    ev("response.output_text.delta", item_id="msg_1", content_index=0, delta=" tok", logprobs=[]),
    ev("response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta="é\n"),
    ev("response.created", response={"id": "resp_1", "model": "up", "created_at": 2}),
    ev(
        "response.output_text.delta",
        item_id="msg_1",
        content_index=0,
        delta="p",
        logprobs=[{"token": "p", "logprob": -0.5, "bytes": [112], "top_logprobs": []}],
    ),
    ev("response.reasoning_text.delta", item_id="rs_1", content_index=0, delta="think"),
    ev("response.reasoning_summary_text.delta", item_id="rs_1", summary_index=0, delta="sum"),
    ev("response.refusal.delta", item_id="msg_1", content_index=0, delta="no"),
    ev("response.output_text.delta", item_id="msg_2", content_index=1, delta="other part"),
    ev("response.output_text.delta", item_id="msg_1", content_index=1, delta="next part"),
    ev("response.output_text.done", item_id="msg_1", content_index=0, text="whole"),
    ev("response.completed", response={"status": "completed", "usage": {"input_tokens": 1}}),
    ev("error", code="bad", message="upstream broke"),
    ("", "[DONE]"),
    ("response.output_text.delta", "{not json"),
]


# Network chunk sizes: small ones split events, a large one puts many events in one ``feed``.
SIZES = st.integers(min_value=1, max_value=64) | st.integers(min_value=200, max_value=4000)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(text_event(), st.sampled_from(OTHERS)), max_size=12),
    st.sampled_from(MODES),
    st.sampled_from(["m", None]),
    SIZES,
    st.sampled_from([None, ["tok t"], ["é"]]),
    st.sampled_from([0, 2]),
)
def test_generated_streams_write_the_same(
    events: list[tuple[str | None, str]],
    mode: ReasoningMode,
    model: str | None,
    size: int,
    stops: list[str] | None,
    choice: int,
) -> None:
    chunks = split(b"".join(sse(kind or None, data) for kind, data in events), size)
    options: dict[str, Any] = {"mode": mode, "model": model, "stops": stops, "choice": choice}
    same_three_ways(chunks, **options)


# ``feed_sse`` writes a text chunk's JSON itself around the text: any text, escaped or not, any
# model name (one named after the writer's probe is written the long way), with and without usage.
TEXTS = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=0, max_size=6
) | st.sampled_from(['"', "\\", "\n", "\x7f", "\u2028", "\x00", "é", "😀", "\u00a0", 'a\\"b', "</script>"])
MODELS = st.sampled_from(["m", None, 'mo"del', "é/ü", "\x00shim-text-probe\x00", ""])


@st.composite
def any_text_event(draw: st.DrawFn) -> tuple[str, str]:
    fields: dict[str, Any] = {"item_id": draw(st.sampled_from(["msg_1", "msg_2"])), "delta": draw(TEXTS)}
    if draw(st.booleans()):
        fields["content_index"] = draw(st.sampled_from([0, 1]))
    if draw(st.booleans()):
        fields["sequence_number"] = draw(st.integers(min_value=0, max_value=10**6))
    if draw(st.booleans()):
        fields["logprobs"] = []
    compact = draw(st.booleans())
    return TEXT_DELTA, json.dumps(
        {"type": TEXT_DELTA, **fields},
        separators=(",", ":") if compact else None,
        ensure_ascii=draw(st.booleans()),
    )


TEXT_DELTA = "response.output_text.delta"
UPSTREAM_MODEL = [ev("response.created", response={"id": "resp_1", "model": 'up\\"', "created_at": 2})]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(any_text_event(), any_text_event(), st.sampled_from(OTHERS + UPSTREAM_MODEL)), max_size=14
    ),
    st.sampled_from(MODES),
    MODELS,
    SIZES,
    st.booleans(),
    st.none() | st.integers(min_value=0, max_value=20),
)
def test_any_text_is_written_as_its_chunk(
    events: list[tuple[str | None, str]],
    mode: ReasoningMode,
    model: str | None,
    size: int,
    usage: bool,
    fail_after: int | None,
) -> None:
    chunks = split(b"".join(sse(kind or None, data) for kind, data in events), size)
    same_three_ways(chunks, mode=mode, model=model, include_usage=usage, fail_after=fail_after)


@pytest.mark.parametrize("size", [1, 7, 256])
def test_the_benchmark_stream_is_written_the_short_way(size: int) -> None:
    """The bench's stream (``bench/translate.py``): every text delta the short way, same bytes."""
    events = [ev("response.created", response={"id": "r", "model": "up", "created_at": 2})]
    events += [
        (
            TEXT_DELTA,
            json.dumps({"type": TEXT_DELTA, "sequence_number": n, "item_id": "msg_b", "delta": f" t{n}"}),
        )
        for n in range(40)
    ]
    chunks = split(b"".join(sse(kind, data) for kind, data in events), size)
    with pytest.MonkeyPatch.context() as patch:
        read: list[str] = []
        patch.setattr(ChatChoiceDriver, "_read", lambda self, event, out: read.append(event.data))
        driver = ChatChoiceDriver(completion_id="chatcmpl-t", created=1, model="m")
        driver.start()
        b"".join(driver.feed_sse(chunk) for chunk in chunks)
    assert len(read) == 1  # only the ``response.created``
    same_three_ways(chunks)


@pytest.mark.parametrize("usage", [True, False])
@pytest.mark.parametrize("model", ["m", 'q"uote', "é", ""])
@pytest.mark.parametrize("text", [" tok", '"', "\\", "\n", "\x7f", "\u2028", "😀"])
def test_text_frame_is_text_chunks_json(text: str, model: str, usage: bool) -> None:
    def writer() -> ChatStreamWriter:
        w = ChatStreamWriter(completion_id="chatcmpl-t", created=7, model=model, include_usage=usage)
        w.start()
        return w

    framed, plain = writer(), writer()
    frame = framed.text_frame()
    assert frame is not None
    frame.content.append(text)
    written = frame.head + msgspec.json.encode(text).decode() + frame.tail
    chunk = plain.text_chunk(text)
    assert chunk is not None
    assert written.encode() == c.encode_chunk(chunk)
    assert msgspec.json.encode(framed.completion) == msgspec.json.encode(plain.completion)


def test_no_text_frame_where_text_chunk_writes_none() -> None:
    w = ChatStreamWriter(completion_id="chatcmpl-t", created=7, model="m")
    assert w.text_frame() is None and w.text_chunk("x") is None  # the opening chunk is not out
    w.start()
    w.finish()
    assert w.text_frame() is None and w.text_chunk("x") is None  # the stream has ended
    probe = ChatStreamWriter(completion_id="chatcmpl-t", created=7, model="\x00shim-text-probe\x00")
    probe.start()
    assert probe.text_frame() is None and probe.text_chunk("x") is not None  # the long way

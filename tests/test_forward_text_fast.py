"""The forward pipeline's short way for plain text deltas (``ChatStreamReader.text_of`` →
``ResponsesStreamWriter.texts_sse``, SSE bytes with no delta or event struct between) against
the general one (``feed`` and ``encode_tagged``, as ``http/responses.py`` writes each event):
the same bytes, final response and writer state, for every recorded Chat stream and for
generated streams mixing text chunks of every shape with reasoning, refusals, tool calls, usage,
errors and the end, split anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.core.deltas import ErrorDelta, ReasoningDelta, RefusalDelta, TextDelta
from shim.dialects.registry import get_dialect
from shim.ids import CountingIds, fixed_clock
from shim.sse import encode_tagged
from shim.translate import responses_writer
from shim.translate.pipeline import ChatToResponsesStream
from shim.translate.responses_writer import ResponsesStreamWriter
from shim.wire import responses as r

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "responses_over_chat"
STREAMS = sorted(ROOT.rglob("upstream*.sse"))
DIALECTS = ["openai", "think-tags", "deepseek", "vllm"]


def written(events: list[Any]) -> bytes:
    """What ``http/responses.py`` sends for a batch: bytes as they are, structs encoded."""
    return b"".join([e if isinstance(e, bytes) else encode_tagged(e) for e in events])


def pieces(writer: ResponsesStreamWriter) -> bytes:
    """How the open item holds its text (a few joined blocks, then loose pieces): kept alike."""
    item = writer._open
    if isinstance(item, responses_writer._Message):
        return msgspec.json.encode([item.content, item.joined, item.kind, len(item.parts)])
    return b""


def outcome(
    chunks: list[bytes],
    *,
    framed: bool,
    dialect: str = "openai",
    logprobs: bool = False,
    fail_after: int | None = None,
) -> list[Any]:
    """What a stream through the pipeline gives: the bytes per network chunk, the response and
    the writer's state at the end; ``framed``: through ``feed_framed``, else ``feed``."""
    template = r.ResponseResource(id="resp_t", created_at=1, model="m")
    stream = ChatToResponsesStream(
        template, get_dialect(dialect), ids=CountingIds(), clock=fixed_clock(), include_logprobs=logprobs
    )
    out = [written([*stream.start()])]
    for n, chunk in enumerate(chunks):
        try:
            out.append(written(stream.feed_framed(chunk) if framed else [*stream.feed(chunk)]))
        except msgspec.DecodeError as exc:  # a chunk that is no JSON: the same error both ways
            out.append(str(exc).encode())
        out.append(pieces(stream.writer))
        if n == fail_after:  # an error from outside, then more bytes (a late batch)
            out.append(written([*stream.fail(ErrorDelta(message="gone", code="upstream_gone"))]))
    out.append(written([*stream.finish(truncated=True)]))
    writer = stream.writer
    return [
        out,
        msgspec.json.encode(stream.response),
        writer._seq,
        msgspec.json.encode(writer.output),
        (stream.reader.saw_done, stream.reader.saw_finish),
    ]


def same_both_ways(chunks: list[bytes], **options: Any) -> list[Any]:
    framed = outcome(chunks, framed=True, **options)
    assert framed == outcome(chunks, framed=False, **options)
    return framed


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_corpus_has_streams() -> None:
    assert len(STREAMS) >= 30


@pytest.mark.parametrize("logprobs", [False, True])
@pytest.mark.parametrize("size", [13, 97, 4096])
@pytest.mark.parametrize("path", STREAMS, ids=[str(p.relative_to(ROOT)) for p in STREAMS])
def test_recorded_streams_write_the_same(path: Path, size: int, logprobs: bool) -> None:
    dialect = path.relative_to(ROOT).parts[0]
    same_both_ways(split(path.read_bytes(), size), dialect=dialect, logprobs=logprobs)


# Chat chunks: text in the one layout a stream repeats (the reader learns it), and everything else.
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    return json.dumps({**BASE, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


TEXTS = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=0, max_size=6
) | st.sampled_from(
    [
        '"',
        "\\",
        "\n",
        "\x7f",
        "\u2028",
        "\u2029",
        "\x00",
        "é",
        "😀",
        "\u00a0",
        'a\\"b',
        "</script>",
        "7302915846113",
    ]
)
ROLE = chunk({"role": "assistant", "content": ""})
OTHERS = [
    ROLE,
    chunk({"reasoning_content": "think"}),
    chunk({"reasoning": "thought"}),
    chunk({"refusal": "no"}),
    chunk({"content": "<think>inner</think>after"}),
    chunk({"content": "lp"}, logprobs=None),
    json.dumps(
        {
            **BASE,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "p"},
                    "logprobs": {
                        "content": [{"token": "p", "logprob": -0.5, "bytes": [112], "top_logprobs": []}]
                    },
                    "finish_reason": None,
                }
            ],
        }
    ),
    chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
    chunk(
        {
            "tool_calls": [
                {"index": 1, "id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
            ]
        }
    ),
    chunk({}, "stop"),
    chunk({}, "length"),
    json.dumps(
        {**BASE, "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}
    ),
    json.dumps({"error": {"message": "upstream broke", "type": "server_error", "code": "boom"}}),
    "[DONE]",
    "{not json",
    json.dumps(
        {
            **BASE,
            "model": "other",
            "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
        }
    ),
]


@st.composite
def text_chunk(draw: st.DrawFn) -> str:
    """Mostly the stream's one layout; sometimes another one (extra keys, spacing, escapes)."""
    text = draw(TEXTS)
    if draw(st.integers(min_value=0, max_value=4)):
        return chunk({"content": text})
    delta: dict[str, Any] = {"content": text}
    if draw(st.booleans()):
        delta["role"] = "assistant"
    return json.dumps(
        {**BASE, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        separators=(",", ":") if draw(st.booleans()) else None,
        ensure_ascii=draw(st.booleans()),
    )


def sse(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


# Network chunk sizes: small ones split events, a large one puts many events in one ``feed``.
SIZES = st.integers(min_value=1, max_value=64) | st.integers(min_value=200, max_value=4000)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(text_chunk(), text_chunk(), text_chunk(), st.sampled_from(OTHERS)), max_size=16),
    st.sampled_from(DIALECTS),
    SIZES,
    st.booleans(),
    st.none() | st.integers(min_value=0, max_value=30),
)
def test_generated_streams_write_the_same(
    events: list[str], dialect: str, size: int, logprobs: bool, fail_after: int | None
) -> None:
    data = sse(ROLE) + b"".join(sse(e) for e in events)
    same_both_ways(split(data, size), dialect=dialect, logprobs=logprobs, fail_after=fail_after)


@pytest.mark.parametrize("size", [1, 7, 256])
def test_the_benchmark_stream_is_written_the_short_way(size: int) -> None:
    """The bench's stream (``bench/translate.py``): once the layout is learnt, every text
    delta is bytes from the writer's frame, and the bytes are the general way's."""
    events = [ROLE] + [chunk({"content": f" t{n}"}) for n in range(60)] + [chunk({}, "stop"), "[DONE]"]
    chunks = split(b"".join(sse(e) for e in events), size)
    template = r.ResponseResource(id="resp_t", created_at=1, model="m")
    stream = ChatToResponsesStream(template, get_dialect("openai"), ids=CountingIds(), clock=fixed_clock())
    stream.start()
    structs = [e for data in chunks for e in stream.feed_framed(data) if not isinstance(e, bytes)]
    deltas = [e for e in structs if isinstance(e, r.ResponseOutputTextDeltaStreamingEvent)]
    assert len(deltas) <= 5  # the chunks read the long way while the reader learns the layout
    same_both_ways(chunks)


ITEM_IDS = ["msg_1", 'msg_"q"', "msg_7302915846113", "msg_é"]


@pytest.mark.parametrize("logprobs", [False, True])
@pytest.mark.parametrize("item_id", ITEM_IDS)
@pytest.mark.parametrize("text", [" tok", '"', "\\", "\n", "\x7f", "\u2028", "😀", "\x00shim-text-probe\x00"])
def test_texts_sse_is_the_events_encoded(text: str, item_id: str, logprobs: bool) -> None:
    def writer() -> ResponsesStreamWriter:
        w = ResponsesStreamWriter(
            r.ResponseResource(id="resp_t", created_at=1, model="m"),
            ids=lambda prefix: item_id,
            clock=fixed_clock(),
            include_logprobs=logprobs,
        )
        w.start()
        w.feed(TextDelta("first"))  # opens the message and its text part
        return w

    framed, plain = writer(), writer()
    texts = [text, "b", text] * 7  # past the writer's compaction of its pieces (``_LOOSE``)
    sse_text = framed.texts_sse(texts)
    general = b"".join(encode_tagged(e) for e in plain.feed_all([TextDelta(t) for t in texts]))
    if item_id == "msg_7302915846113":
        assert sse_text is None  # the sequence probe shows up twice: the long way
        return
    assert sse_text is not None
    assert sse_text.encode() == general
    assert framed._seq == plain._seq
    end = [framed.finish(), plain.finish()]
    assert written([*end[0]]) == written([*end[1]])


def test_no_frame_where_no_text_part_is_open() -> None:
    w = ResponsesStreamWriter(
        r.ResponseResource(id="resp_t", created_at=1, model="m"), ids=CountingIds(), clock=fixed_clock()
    )
    w.start()
    assert w.texts_sse(["x"]) is None  # no message yet
    w.feed(TextDelta("a"))
    assert w.texts_sse(["x"]) is not None
    w.feed(RefusalDelta("no"))  # a refusal part is open now
    assert w.texts_sse(["x"]) is None
    w.feed(ReasoningDelta("hm"))  # a reasoning item is open now
    assert w.texts_sse(["x"]) is None
    w.finish()
    assert w.texts_sse(["x"]) is None  # everything closed


def test_a_broken_frame_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The equivalence check itself can fail: a frame learnt with a wrong probe is noticed."""
    monkeypatch.setattr(responses_writer, "_TEXT_DELTA_SSE", "event: response.output_text.delta\ndata:")
    events = [ROLE] + [chunk({"content": f" t{n}"}) for n in range(20)]
    with pytest.raises(AssertionError):
        same_both_ways(split(b"".join(sse(e) for e in events), 256))

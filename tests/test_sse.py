"""SSE decoder and encoders: a row per rule, then re-chunking properties against a whole-stream reference."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.sse import DONE, KEEPALIVE, SSEDecoder, SSEEvent, encode_data, encode_event


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.finish()


def ev(data: str, event: str | None = None, id: str | None = None, retry: int | None = None) -> SSEEvent:
    return SSEEvent(event=event, data=data, id=id, retry=retry)


CASES: list[tuple[str, bytes, list[SSEEvent]]] = [
    ("simple", b"data: hello\n\n", [ev("hello")]),
    ("no space after colon", b"data:hello\n\n", [ev("hello")]),
    ("only one space stripped", b"data:  two\n\n", [ev(" two")]),
    ("tab is not stripped", b"data:\tx\n\n", [ev("\tx")]),
    ("colon in value kept", b'data: {"a": 1}\n\n', [ev('{"a": 1}')]),
    ("multi-line data", b"data: a\ndata: b\ndata:\n\n", [ev("a\nb\n")]),
    ("data without colon is empty data", b"data\n\n", [ev("")]),
    ("two data without colon", b"data\ndata\n\n", [ev("\n")]),
    ("empty data line dispatches", b"data:\n\n", [ev("")]),
    ("event type", b"event: response.created\ndata: {}\n\n", [ev("{}", "response.created")]),
    ("empty event type is default", b"event:\ndata: x\n\n", [ev("x")]),
    ("event without data is not dispatched", b"event: ping\n\n", []),
    ("event type resets after dispatch", b"event: a\ndata: 1\n\ndata: 2\n\n", [ev("1", "a"), ev("2")]),
    ("event type resets on empty block", b"event: a\n\ndata: 2\n\n", [ev("2")]),
    ("CRLF", b"event: e\r\ndata: x\r\n\r\n", [ev("x", "e")]),
    ("lone CR", b"event: e\rdata: x\r\rdata: y\r\r", [ev("x", "e"), ev("y")]),
    ("mixed endings", b"data: a\r\ndata: b\rdata: c\n\r\n", [ev("a\nb\nc")]),
    ("comment ignored", b": keep-alive\n\ndata: x\n\n", [ev("x")]),
    ("comment inside event", b"data: a\n: note\ndata: b\n\n", [ev("a\nb")]),
    ("field with no colon ignored", b"foo\ndata: x\n\n", [ev("x")]),
    ("unknown field ignored", b"foo: bar\ndata: x\n\n", [ev("x")]),
    ("field names are case-sensitive", b"Data: x\nDATA: y\n\n", []),
    ("space before colon makes another field", b"data : x\n\n", []),
    ("BOM at start", b"\xef\xbb\xbfdata: x\n\n", [ev("x")]),
    ("only the first BOM", b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", []),
    ("BOM later is data", b"data: \xef\xbb\xbfx\n\n", [ev("\ufeffx")]),
    ("DONE is plain data", b"data: [DONE]\n\n", [ev("[DONE]")]),
    ("id", b"id: 7\ndata: x\n\n", [ev("x", id="7")]),
    ("id persists", b"id: 7\ndata: x\n\ndata: y\n\n", [ev("x", id="7"), ev("y", id="7")]),
    ("empty id resets to empty", b"id: 7\ndata: x\n\nid\ndata: y\n\n", [ev("x", id="7"), ev("y", id="")]),
    ("id with NUL ignored", b"id: a\x00b\ndata: x\n\n", [ev("x")]),
    ("retry", b"retry: 3000\ndata: x\n\ndata: y\n\n", [ev("x", retry=3000), ev("y")]),
    ("retry not digits ignored", b"retry: 3s\ndata: x\n\n", [ev("x")]),
    ("retry non-ascii digits ignored", "retry: ²\ndata: x\n\n".encode(), [ev("x")]),
    ("utf-8", "data: héllo 🙂\n\n".encode(), [ev("héllo 🙂")]),
    ("invalid utf-8 replaced", b"data: a\xffb\n\n", [ev("a\ufffdb")]),
    ("truncated utf-8 replaced at end", b"data: a\xf0\x9f", [ev("a\ufffd")]),
    ("final event without blank line", b"data: last", [ev("last")]),
    ("final event after one newline", b"data: last\n", [ev("last")]),
    ("final event after CR", b"data: last\r", [ev("last")]),
    ("truncated field name", b"data: a\n\nda", [ev("a")]),
    ("empty stream", b"", []),
    ("only blank lines", b"\n\n\r\n\r\r", []),
    (
        "other separators are not line breaks",
        "data: a\x0bb\x0cc\u2028d\x85e\n\n".encode(),
        [ev("a\x0bb\x0cc\u2028d\x85e")],
    ),
]


@pytest.mark.parametrize(("stream", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decode_table(stream: bytes, expected: list[SSEEvent]) -> None:
    assert decode(stream) == expected
    assert decode(*[stream[i : i + 1] for i in range(len(stream))]) == expected


def test_comment_counter() -> None:
    decoder = SSEDecoder()
    decoder.feed(b": one\n:two\ndata: x\n: three\n\n")
    decoder.feed(b":")
    assert decoder.comments == 3
    decoder.finish()
    assert decoder.comments == 4


def test_cr_at_chunk_end_then_lf_is_one_line_break() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # The LF completes the CRLF; it must not count as the blank line that dispatches.
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\n\r") == [ev("a\nb")]
    assert decoder.feed(b"\ndata: c\r") == []
    assert decoder.feed(b"\r") == [ev("c")]
    assert decoder.finish() == []


def test_cr_lf_separated_by_empty_chunks() -> None:
    assert decode(b"data: a\r", b"", b"\n", b"", b"\r", b"\n") == [ev("a")]


def test_split_inside_multibyte_character() -> None:
    decoder = SSEDecoder()
    emoji = "🙂".encode()
    assert decoder.feed(b"data: " + emoji[:1]) == []
    assert decoder.feed(emoji[1:3]) == []
    assert decoder.feed(emoji[3:] + b"\n\n") == [ev("🙂")]


def test_split_bom() -> None:
    assert decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [ev("x")]


def test_feed_returns_events_as_soon_as_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n\ndata: 2\n\ndata: 3") == [ev("1"), ev("2")]
    assert decoder.finish() == [ev("3")]


def test_finish_never_raises_and_resets() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"\xef\xbb\xbfid: 9\nevent: e\ndata: half\xe2\x82")
    assert decoder.finish() == [ev("half\ufffd", "e", id="9")]
    assert decoder.finish() == []
    # A new stream may follow: its BOM is dropped again, last_event_id survives.
    assert decoder.feed(b"\xef\xbb\xbfdata: next\n\n") == [ev("next", id="9")]
    assert decoder.last_event_id == "9"


def test_retry_without_data_is_kept_on_decoder() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 1500\n\n") == []
    assert decoder.retry == 1500
    assert decoder.feed(b"data: x\n\n") == [ev("x")]


def test_long_line_in_tiny_chunks() -> None:
    payload = "x" * 100_000
    stream = f"data: {payload}\n\n".encode()
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for i in range(0, len(stream), 7):
        events += decoder.feed(stream[i : i + 7])
    assert events == [ev(payload)]


# --- encoders -----------------------------------------------------------------------------------------------


def test_encode_event() -> None:
    assert encode_event("response.created", b'{"a":1}') == b'event: response.created\ndata: {"a":1}\n\n'


def test_encode_data() -> None:
    assert encode_data(b'{"a":1}') == b'data: {"a":1}\n\n'


def test_constants() -> None:
    assert DONE == b"data: [DONE]\n\n"
    assert KEEPALIVE == b": keep-alive\n\n"
    decoder = SSEDecoder()
    assert decoder.feed(KEEPALIVE + DONE) == [ev("[DONE]")]
    assert decoder.comments == 1


def test_encode_multiline_data_round_trips() -> None:
    assert encode_data(b"a\nb") == b"data: a\ndata: b\n\n"
    assert encode_event("t", b"a\r\nb\rc\n") == b"event: t\ndata: a\ndata: b\ndata: c\ndata: \n\n"
    assert decode(encode_event("t", b"a\r\nb\n")) == [ev("a\nb\n", "t")]


def test_encode_event_rejects_line_break_in_type() -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_event("a\nb", b"{}")


@given(st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30), st.binary(max_size=40))
def test_encoders_round_trip(event_type: str, data: bytes) -> None:
    expected_type = event_type or None
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    assert decode(encode_event(event_type, data)) == [ev(text, expected_type)]
    assert decode(encode_data(data)) == [ev(text)]


# --- re-chunking properties ---------------------------------------------------------------------------------


def reference_decode(stream: bytes) -> list[SSEEvent]:
    """A deliberately naive whole-stream decoder, independent of SSEDecoder's incremental bookkeeping."""
    text = stream.decode("utf-8", "replace").removeprefix("\ufeff")
    events: list[SSEEvent] = []
    data: list[str] = []
    event: str | None = None
    last_id: str | None = None
    retry: int | None = None
    for line in [*re.split(r"\r\n|\r|\n", text), ""]:
        if line == "":
            if data:
                events.append(SSEEvent(event, "\n".join(data), last_id, retry))
            data, event, retry = [], None, None
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value or None
            elif name == "id" and "\0" not in value:
                last_id = value
            elif name == "retry" and re.fullmatch(r"[0-9]+", value):
                retry = int(value)
    return events


VALUE = st.lists(
    st.sampled_from(["a", "é", "🙂", "中", " ", ":", "\t", "[DONE]", "{}", "\ufeff"]), max_size=8
).map("".join)
LINE = st.one_of(
    st.builds(lambda v: "data: " + v, VALUE),
    st.builds(lambda v: "data:" + v, VALUE),
    st.just("data"),
    st.builds(lambda v: "event: " + v, VALUE),
    st.builds(lambda v: ": " + v, VALUE),
    st.builds(lambda v: "id: " + v, VALUE),
    st.builds(lambda n: f"retry: {n}", st.integers(0, 99999)),
    st.just("bogus"),
    st.just(""),
)
EOL = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    bom = draw(st.booleans())
    lines = draw(st.lists(st.tuples(LINE, EOL), max_size=25))
    raw = ("\ufeff" if bom else "") + "".join(line + eol for line, eol in lines)
    stream = raw.encode()
    if draw(st.booleans()):  # sprinkle in invalid bytes
        at = draw(st.integers(0, len(stream)))
        stream = (
            stream[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xf0\x9f", b"\xed\xa0\x80"]))
            + stream[at:]
        )
    if draw(st.booleans()):  # truncate anywhere, even inside a character
        stream = stream[: draw(st.integers(0, len(stream)))]
    return stream


def split_at(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(stream)) for c in cuts})
    edges = [0, *points, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=400)
@given(sse_streams(), st.lists(st.integers(0, 400), max_size=20))
def test_any_split_matches_whole_and_reference(stream: bytes, cuts: list[int]) -> None:
    whole = decode(stream)
    assert whole == reference_decode(stream)
    assert decode(*split_at(stream, cuts)) == whole


@settings(max_examples=100)
@given(sse_streams())
def test_every_single_split_point(stream: bytes) -> None:
    whole = decode(stream)
    for i in range(len(stream) + 1):
        assert decode(stream[:i], stream[i:]) == whole, i


RECORDED = (
    "\ufeff: hi\r\n"
    'event: response.output_text.delta\r\ndata: {"delta":"h\\u00e9 🙂 中"}\r\n\r\n'
    "data: line one\rdata:line two\r\r"
    'id: 1\ndata: {"choices":[{"delta":{"content":"🙂🙂"}}]}\n\n'
    ": keep-alive\n\n"
    "retry: 10\nfoo\ndata: [DONE]\n\n"
    "data: no terminator 🙂"
).encode()


def test_every_byte_boundary_of_a_mixed_stream() -> None:
    whole = decode(RECORDED)
    assert len(whole) == 5
    assert whole[0] == ev('{"delta":"h\\u00e9 🙂 中"}', "response.output_text.delta")
    assert whole[1] == ev("line one\nline two")
    assert whole[-1] == ev("no terminator 🙂", id="1")
    for i in range(len(RECORDED) + 1):
        assert decode(RECORDED[:i], RECORDED[i:]) == whole, i
        for j in range(i, len(RECORDED) + 1, 5):
            assert decode(RECORDED[:i], RECORDED[i:j], RECORDED[j:]) == whole, (i, j)
    assert decode(*[RECORDED[i : i + 1] for i in range(len(RECORDED))]) == whole


# Streams shaped like real ones (whole blocks, mostly ``data: …`` alone or after ``event: …``): the
# decoder reads such blocks without its line loop, so they get a property of their own.
BLOCK = st.one_of(
    st.builds(lambda v: ["data: " + v], VALUE),
    st.builds(lambda e, v: ["event: " + e, "data: " + v], VALUE, VALUE),
    st.lists(LINE, min_size=1, max_size=4),
)


@st.composite
def block_streams(draw: st.DrawFn) -> bytes:
    out = []
    for lines in draw(st.lists(BLOCK, max_size=12)):
        eol = draw(EOL)
        out.append("".join(line + eol for line in lines) + draw(EOL))
    return "".join(out).encode()


@settings(max_examples=400)
@given(block_streams(), st.lists(st.integers(0, 400), max_size=20))
def test_block_streams_match_reference_however_split(stream: bytes, cuts: list[int]) -> None:
    whole = decode(stream)
    assert whole == reference_decode(stream)
    assert decode(*split_at(stream, cuts)) == whole
    assert decode(*[stream[i : i + 1] for i in range(len(stream))]) == whole

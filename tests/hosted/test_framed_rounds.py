"""A streamed hosted round for an SSE client (``hosted_rounds.FramedRound``: runs of plain text
deltas as SSE bytes numbered by ``RoundMerger.texts``) against the same round as event structs
(``Round``, each event encoded as ``http/responses.py`` writes it): the same bytes and the same
merged response, for every recorded Chat stream as the round after a hosted call, split anywhere,
and for generated streams mixing text of every shape with the events around it (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fake_upstream import chat_tool_call
from shim.dialects.registry import get_dialect
from shim.errors import ShimError, UpstreamError
from shim.ids import CountingIds, fixed_clock
from shim.sse import encode_tagged
from shim.translate.hosted_events import RoundMerger
from shim.translate.pipeline import ChatToResponsesStream
from shim.turns.hosted_rounds import FramedRound, Round
from shim.turns.responses_over_chat import fail_after_finish
from shim.wire import responses as r

ROOT = Path(__file__).resolve().parents[2] / "fixtures" / "responses_over_chat"
STREAMS = sorted(ROOT.rglob("upstream*.sse"))
DEMO = r.NamespaceTool(
    name="demo", tools=[r.FunctionToolParam(name="magic_word", parameters={"type": "object"})]
)
ROUND = r.ResponseResource(id="resp_1", created_at=1, model="m", tools=[DEMO])
CLIENT = msgspec.structs.replace(ROUND, tools=[r.McpTool(server_label="demo")])
_, CALL = chat_tool_call("demo__magic_word", '{"word": "x"}')


class _Inner:
    """What the rounds read of ``EventsTranslation`` for a streamed round, over its driver."""

    def __init__(self, driver: ChatToResponsesStream) -> None:
        self.driver, self.streamed, self.sealed, self.stopped = driver, True, None, False

    def feed(self, data: bytes) -> list[r.StreamingEvent]:
        return self.driver.feed(data)

    def finish(self) -> list[r.StreamingEvent]:
        return self.driver.finish(truncated=True)

    def unstored(self, tail: list[r.StreamingEvent], error: ShimError) -> list[r.StreamingEvent]:
        return fail_after_finish(tail, error)

    def fail(self, error: UpstreamError) -> list[r.StreamingEvent]:
        raise AssertionError("not used here")


def _kind(namespace: str, name: str) -> Any:
    return "mcp" if namespace == "demo" else None


def written(batch: list[Any]) -> bytes:
    return b"".join([e if isinstance(e, bytes) else encode_tagged(e) for e in batch])


def run(rounds: list[list[bytes]], *, framed: bool, dialect: str = "openai") -> tuple[list[bytes], Any]:
    """Each round's chunks through a round translation and one merger: the bytes per chunk, and
    the merged response (the calls of a round answered before the next)."""
    ids = CountingIds()
    merger = RoundMerger(CLIENT, ids=ids, clock=fixed_clock(), classify=_kind)
    out = [written([*merger.start()])]
    out.append(written(merger.listed(r.McpListTools(id=ids("mcpl"), server_label="demo", tools=[]))))
    for chunks in rounds:
        merger.begin_round()
        driver = ChatToResponsesStream(ROUND, get_dialect(dialect), ids=ids, clock=fixed_clock())
        inner = _Inner(driver)
        translation: Any = FramedRound(inner, merger) if framed else Round(inner, merger)
        for chunk in chunks:
            out.append(written(translation.feed(chunk)))
        out.append(written(translation.finish()))
        for call in merger.pending:
            out.append(written(merger.call_started(call)))
            out.append(written(merger.call_finished(call, "magic-x-42", None)))
    if not merger.finished:  # the last round called a tool: its held end is the response's
        out.append(written(merger.close()))
    return out, msgspec.json.encode(merger.response)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


@pytest.mark.parametrize("path", STREAMS, ids=[str(p.relative_to(ROOT)) for p in STREAMS])
@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
def test_recorded_streams_after_a_hosted_call(path: Path, size: int) -> None:
    data = path.read_bytes()
    first = b"".join(CALL)
    for dialect in ("openai", "think-tags"):
        rounds = [split(first, size), split(data, size)]
        assert run(rounds, framed=True, dialect=dialect) == run(rounds, framed=False, dialect=dialect)


def _chunk(delta: dict[str, Any], **extra: Any) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    choice = {"index": 0, "delta": delta, "finish_reason": extra.pop("finish_reason", None)}
    return b"data: " + json.dumps({**body, "choices": [choice], **extra}).encode() + b"\n\n"


# pieces of text that JSON writes as they are, escapes, or that could look like an id or a probe
TEXTS = st.lists(
    st.sampled_from(["a", " ", '"', "\\", "\n", "é", "\x00", "\u2028", "😀", "msg_1", "7302915846113"]),
    max_size=6,
).map("".join)
PIECES = st.one_of(
    TEXTS.map(lambda t: _chunk({"content": t})),  # plain text chunks, empty ones too
    TEXTS.map(lambda t: _chunk({"role": "assistant", "content": t})),  # another layout
    TEXTS.map(lambda t: _chunk({"refusal": t})),
    TEXTS.map(lambda t: _chunk({"reasoning_content": t})),
    TEXTS.map(lambda t: _chunk({"content": t}, usage=None)),  # text beside another field
)


@settings(max_examples=150, deadline=None)
@given(
    first=st.lists(PIECES, max_size=8),
    second=st.lists(PIECES, max_size=12),
    cut=st.integers(min_value=1, max_value=200),
)
def test_generated_rounds(first: list[bytes], second: list[bytes], cut: int) -> None:
    end = _chunk({}, finish_reason="stop") + b"data: [DONE]\n\n"
    calls = b"".join(CALL)
    rounds = [split(b"".join(first) + calls, cut), split(b"".join(second) + end, cut)]
    assert run(rounds, framed=True) == run(rounds, framed=False)


def test_the_text_of_a_round_goes_as_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The short way is taken (else the tests above would hold nothing): after its first, long
    way, the texts of a part come as bytes, one run per chunk of several."""
    framed: list[list[str]] = []
    texts = RoundMerger.texts

    def spy(self: RoundMerger, like: Any, run: list[str]) -> list[r.StreamingEvent | bytes]:
        framed.append(run)
        return texts(self, like, run)

    monkeypatch.setattr(RoundMerger, "texts", spy)
    words = b"".join(_chunk({"content": w}) for w in ["one", " two", ' "three"', " four"])
    end = _chunk({}, finish_reason="stop") + b"data: [DONE]\n\n"
    out, _ = run([[b"".join(CALL)], [words, end]], framed=True)
    assert framed == [[" two", ' "three"', " four"]]
    assert b'"delta":" \\"three\\"","logprobs":[]' in b"".join(out)

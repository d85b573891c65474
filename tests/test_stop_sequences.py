"""``StopFilter``: Chat ``stop`` emulated over deltas, correct at every chunk boundary."""

from __future__ import annotations

import pytest

from shim.core.deltas import Delta, FinishDelta, ReasoningDelta, TextDelta, TokenLogprob, UsageDelta
from shim.translate.stop_sequences import StopFilter, stop_list

TEXT = "The answer is 42.\nNext line. END of text"

CASES = [
    # (stops, text let through, stopped)
    (["\n"], "The answer is 42.", True),
    (["END", "\n"], "The answer is 42.", True),
    (["line. END"], "The answer is 42.\nNext ", True),
    (["42", "answer"], "The ", True),  # the earliest match wins, not the first listed
    (["nope"], TEXT, False),
    (["text!"], TEXT, False),  # a prefix held back at the end is let through
    (["T"], "", True),
]


def _run(stops: list[str], pieces: list[str]) -> tuple[str, list[Delta]]:
    f = StopFilter(stops)
    out: list[Delta] = []
    for piece in pieces:
        out += f.feed(TextDelta(piece))
    out += f.feed(FinishDelta("length"))
    out += f.finish()
    text = "".join(d.text for d in out if isinstance(d, TextDelta))
    return text, [d for d in out if not isinstance(d, TextDelta)]


@pytest.mark.parametrize(("stops", "expected", "stopped"), CASES)
def test_every_split_gives_the_same_cut(stops: list[str], expected: str, stopped: bool) -> None:
    finish = [FinishDelta("stop")] if stopped else [FinishDelta("length")]
    assert _run(stops, [TEXT]) == (expected, finish)
    assert _run(stops, list(TEXT)) == (expected, finish), "one character at a time"
    for k in range(1, len(TEXT)):
        for j in range(k, len(TEXT)):
            assert _run(stops, [TEXT[:k], TEXT[k:j], TEXT[j:]]) == (expected, finish), (k, j)


def test_other_deltas_pass_and_usage_survives_the_stop() -> None:
    f = StopFilter(["STOP"])
    assert f.feed(ReasoningDelta("STOP thinking")) == [ReasoningDelta("STOP thinking")]
    assert f.feed(TextDelta("abST")) == [TextDelta("ab")]
    assert f.feed(TextDelta("OP and more")) == [FinishDelta("stop")]
    assert f.stopped
    assert f.feed(TextDelta("ignored")) == []
    assert f.feed(FinishDelta("length")) == []
    assert f.feed(UsageDelta(1, 2)) == [UsageDelta(1, 2)]


def test_no_stops_is_a_pass_through() -> None:
    f = StopFilter([])
    assert f.feed(TextDelta("x")) == [TextDelta("x")]
    assert f.finish() == []


def test_logprobs_of_cut_tokens_are_dropped() -> None:
    tokens = [TokenLogprob("Yes", -0.1), TokenLogprob(", it is", -0.2), TokenLogprob(" prime.", -0.3)]
    out = StopFilter(["prime"]).feed(TextDelta("Yes, it is prime.", tokens))
    assert out == [TextDelta("Yes, it is ", tokens[:2]), FinishDelta("stop")]


@pytest.mark.parametrize(("stop", "expected"), [(None, []), ("x", ["x"]), (["a", "", "b"], ["a", "b"])])
def test_stop_list(stop: str | list[str] | None, expected: list[str]) -> None:
    assert stop_list(stop) == expected

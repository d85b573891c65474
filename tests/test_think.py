"""The <think> splitter: a row per rule, every chunk boundary, a property against a whole-string reference."""

from __future__ import annotations

import itertools
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.dialects.think import Segment, SegmentKind, ThinkSplitter

Unclosed = Literal["reasoning", "text"]


def merge(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for kind, text in segments:
        if not text:
            continue
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def run(
    chunks: list[str],
    *,
    start_inside: bool = False,
    unclosed: Unclosed = "reasoning",
    max_buffer: int = 4096,
) -> list[Segment]:
    """Feed the chunks, check the per-call guarantees, and return the merged output."""
    splitter = ThinkSplitter(start_inside=start_inside, unclosed=unclosed, max_buffer=max_buffer)
    out: list[Segment] = []
    for result in [*(splitter.feed(c) for c in chunks), splitter.finish()]:
        assert all(text for _, text in result), result  # never an empty string
        assert all(a[0] != b[0] for a, b in itertools.pairwise(result)), result  # merged
        out += result
    return merge(out)


R: SegmentKind = "reasoning"
T: SegmentKind = "text"

# (name, output, start_inside, unclosed, expected)
CASES: list[tuple[str, str, bool, Unclosed, list[Segment]]] = [
    ("plain text", "Hello world", False, R, [(T, "Hello world")]),
    ("empty output", "", False, R, []),
    ("reasoning then text", "<think>hmm</think>Hi", False, R, [(R, "hmm"), (T, "Hi")]),
    (
        "newline after open dropped once",
        "<think>\n\nhmm\n</think>\n\nHi",
        False,
        R,
        [(R, "\nhmm\n"), (T, "Hi")],
    ),
    ("space after open kept", "<think> hmm</think>Hi", False, R, [(R, " hmm"), (T, "Hi")]),
    ("all whitespace after close dropped", "<think>a</think> \n\t\n Hi\n", False, R, [(R, "a"), (T, "Hi\n")]),
    ("leading whitespace before open dropped", " \n <think>a</think>b", False, R, [(R, "a"), (T, "b")]),
    ("leading whitespace kept without tag", "\n\nHello", False, R, [(T, "\n\nHello")]),
    ("whitespace-only output is text", " \n", False, R, [(T, " \n")]),
    ("empty reasoning", "<think></think>Hi", False, R, [(T, "Hi")]),
    ("empty reasoning with newlines", "<think>\n</think>\n\nHi", False, R, [(T, "Hi")]),
    ("only reasoning", "<think>abc</think>", False, R, [(R, "abc")]),
    ("text before any tag", "Sure. <think>x</think>", False, R, [(T, "Sure. <think>x</think>")]),
    (
        "literal think after reasoning",
        "<think>a</think>Use <think> tags",
        False,
        R,
        [(R, "a"), (T, "Use <think> tags")],
    ),
    (
        "second block is text",
        "<think>a</think>b<think>c</think>",
        False,
        R,
        [(R, "a"), (T, "b<think>c</think>")],
    ),
    ("nested open is reasoning", "<think>a<think>b</think>c", False, R, [(R, "a<think>b"), (T, "c")]),
    ("stray close in text", "Hi</think>there", False, R, [(T, "Hi</think>there")]),
    ("partial prefix becomes text", "<thi" + "s is text", False, R, [(T, "<this is text")]),
    ("lone angle bracket", "<", False, R, [(T, "<")]),
    ("unfinished open at end is text", "  <thin", False, R, [(T, "  <thin")]),
    ("close never arrives", "<think>still going", False, R, [(R, "still going")]),
    ("close never arrives, text policy ignored", "<think>still", False, T, [(R, "still")]),
    ("unfinished close at end is reasoning", "<think>a</thi", False, R, [(R, "a</thi")]),
    ("case matters", "<THINK>a</THINK>", False, R, [(T, "<THINK>a</THINK>")]),
    ("start inside", "hmm</think>\n\nHi", True, R, [(R, "hmm"), (T, "Hi")]),
    ("start inside drops one leading newline", "\n\nhmm</think>Hi", True, R, [(R, "\nhmm"), (T, "Hi")]),
    ("start inside keeps leading spaces", "  hmm</think>Hi", True, R, [(R, "  hmm"), (T, "Hi")]),
    ("start inside swallows explicit open", "<think>\nhmm</think>Hi", True, R, [(R, "hmm"), (T, "Hi")]),
    (
        "start inside swallows ws and explicit open",
        "\n <think>hmm</think>Hi",
        True,
        R,
        [(R, "hmm"), (T, "Hi")],
    ),
    ("start inside, open later is reasoning", "a<think>b</think>c", True, R, [(R, "a<think>b"), (T, "c")]),
    ("start inside, immediate close", "</think>Hi", True, R, [(T, "Hi")]),
    ("start inside, empty output", "", True, R, []),
    ("start inside, never closes", "Hello there", True, R, [(R, "Hello there")]),
    ("start inside, never closes, text policy", "\nHello <b>", True, T, [(T, "\nHello <b>")]),
    ("start inside, closes, text policy", "\nhmm</think>\nHi", True, T, [(R, "hmm"), (T, "Hi")]),
    ("start inside, explicit open, text policy", "<think>hmm", True, T, [(R, "hmm")]),
    ("start inside, unfinished close at end", "hmm</th", True, R, [(R, "hmm</th")]),
    ("start inside, unfinished close, text policy", "hmm</th", True, T, [(T, "hmm</th")]),
    ("start inside, whitespace only", "\n \n", True, R, [(R, " \n")]),
    ("emoji", "<think>🙂</think>🙂", False, R, [(R, "🙂"), (T, "🙂")]),
]


@pytest.mark.parametrize(
    ("output", "start_inside", "unclosed", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_table(output: str, start_inside: bool, unclosed: Unclosed, expected: list[Segment]) -> None:
    assert run([output], start_inside=start_inside, unclosed=unclosed) == expected
    assert run(list(output), start_inside=start_inside, unclosed=unclosed) == expected
    for i in range(len(output) + 1):
        for j in range(i, len(output) + 1):
            chunks = [output[:i], output[i:j], output[j:]]
            assert run(chunks, start_inside=start_inside, unclosed=unclosed) == expected, chunks


def test_streams_without_waiting() -> None:
    s = ThinkSplitter()
    assert s.feed("<think>") == []
    assert s.in_reasoning
    assert s.feed("\nI think") == [(R, "I think")]
    assert s.feed(" more</") == [(R, " more")]  # "</" could start the close tag: held back
    assert s.feed("b>") == [(R, "</b>")]
    assert s.feed("x</think") == [(R, "x")]
    assert not s.done_reasoning
    assert s.feed(">\n") == []
    assert s.done_reasoning
    assert not s.in_reasoning
    assert s.feed("\n") == []
    assert s.feed("Answer") == [(T, "Answer")]
    assert s.feed("<") == [(T, "<")]  # after the block nothing is held back
    assert s.finish() == []


def test_one_feed_merges_and_orders() -> None:
    s = ThinkSplitter()
    assert s.feed("<think>a</think>b") == [(R, "a"), (T, "b")]
    s = ThinkSplitter(start_inside=True)
    assert s.feed("a") == [(R, "a")]
    assert s.feed("") == []
    assert s.feed("b</think>c") == [(R, "b"), (T, "c")]


def test_holdback_is_bounded_by_tag_length() -> None:
    s = ThinkSplitter(start_inside=True)
    assert s.in_reasoning
    # Each "<" could start "</think>"; only the last one is held.
    assert s.feed("x<<<<") == [(R, "x<<<")]
    assert s.feed("</thin") == [(R, "<")]
    assert s.feed("g") == [(R, "</thing")]


def test_flags_for_plain_text() -> None:
    s = ThinkSplitter()
    assert not s.in_reasoning
    assert not s.done_reasoning
    assert s.feed(" \n") == []
    assert s.feed("Hi") == [(T, " \nHi")]
    assert not s.in_reasoning
    assert s.done_reasoning  # a block can no longer start


def test_text_policy_buffers_then_commits_on_overflow() -> None:
    s = ThinkSplitter(start_inside=True, unclosed="text", max_buffer=10)
    assert s.feed("abcde") == []
    assert s.in_reasoning
    assert s.feed("fghij") == []  # exactly max_buffer chars: still buffering
    assert s.feed("k") == [(R, "abcdefghijk")]  # overflow: committed to reasoning
    assert s.feed("l") == [(R, "l")]
    assert s.finish() == []


def test_text_policy_commits_on_close() -> None:
    s = ThinkSplitter(start_inside=True, unclosed="text")
    assert s.feed("\nhm") == []
    assert s.feed("m</think>\n\nHi") == [(R, "hmm"), (T, "Hi")]
    assert s.feed(" there") == [(T, " there")]


def test_text_policy_emits_raw_text_at_finish() -> None:
    s = ThinkSplitter(start_inside=True, unclosed="text")
    assert s.feed("\nNo reasoning ") == []
    assert s.feed("here </thi") == []
    assert s.finish() == [(T, "\nNo reasoning here </thi")]
    assert s.done_reasoning


def test_custom_tags() -> None:
    s = ThinkSplitter("◁think▷", "◁/think▷")
    assert merge(s.feed("◁think▷a◁/thi") + s.feed("nk▷b") + s.finish()) == [(R, "a"), (T, "b")]


@pytest.mark.parametrize(
    "kwargs",
    [{"open_tag": ""}, {"close_tag": ""}, {"unclosed": "maybe"}, {"max_buffer": -1}],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ThinkSplitter(**kwargs)  # type: ignore[arg-type]


# --- property: any chunking equals the whole, and both equal a non-streaming reference ----------------------


def reference(output: str, start_inside: bool, unclosed: Unclosed, max_buffer: int) -> list[Segment]:
    """The rules applied to the whole output at once, with no streaming bookkeeping."""
    body = output.lstrip()
    explicit = body.startswith("<think>")
    if explicit:
        rest = body[len("<think>") :]
    elif start_inside:
        rest = output
    else:
        return merge([(T, output)])
    rest = rest.removeprefix("\n")
    end = rest.find("</think>")
    if end < 0:
        if start_inside and not explicit and unclosed == "text" and len(output) <= max_buffer:
            return merge([(T, output)])
        return merge([(R, rest)])
    return merge([(R, rest[:end]), (T, rest[end + len("</think>") :].lstrip())])


FRAGMENTS = ["<think>", "</think>", "<", "</th", "<thi", "think>", ">", "hello", "🙂", "\n", " ", "\n\n", "a"]


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join),
    st.lists(st.integers(0, 80), max_size=12),
    st.booleans(),
    st.sampled_from(["reasoning", "text"]),
    st.sampled_from([0, 5, 20, 4096]),
)
def test_any_split_matches_whole_and_reference(
    output: str, cuts: list[int], start_inside: bool, unclosed: Unclosed, max_buffer: int
) -> None:
    whole = run([output], start_inside=start_inside, unclosed=unclosed, max_buffer=max_buffer)
    assert whole == reference(output, start_inside, unclosed, max_buffer)
    points = sorted({min(c, len(output)) for c in cuts})
    edges = [0, *points, len(output)]
    chunks = [output[a:b] for a, b in itertools.pairwise(edges)]
    assert run(chunks, start_inside=start_inside, unclosed=unclosed, max_buffer=max_buffer) == whole

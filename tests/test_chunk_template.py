"""The Chat reader's template path (``translate/chunk_template.py``) against its long way.

A reader with templates and one without (``_learns = 0``) must give the same deltas for every
recorded stream of the fixture corpus and for generated chunk sequences (layouts, escapes,
spacing, extra fields, reasoning, tool calls, finish reasons, errors, garbage), and the template
path must actually be taken (so the comparison proves something).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.core.deltas import Delta, ErrorDelta, TextDelta
from shim.dialects.registry import get_dialect
from shim.fixtures.cases import sse_events
from shim.ids import CountingIds
from shim.translate.chat_reader import ChatStreamReader
from shim.translate.chunk_template import TextTemplate

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "responses_over_chat"
STREAMS = sorted(ROOT.glob("*/*/upstream*.sse"))


def read(dialect: str, payloads: list[str], *, learn: bool) -> tuple[list[Delta], int]:
    """The deltas of ``payloads`` and how many of them took the template path."""
    reader = ChatStreamReader(get_dialect(dialect).response, CountingIds())
    if not learn:
        reader._learns = 0
    out: list[Delta] = []
    hits = 0
    for data in payloads:
        template = reader._template
        hit = template is not None and data.startswith(template.head) and data.endswith(template.tail)
        try:
            out += reader.feed_data(data)
        except msgspec.DecodeError as exc:  # what a chunk of garbage does, either way
            out.append(ErrorDelta(f"raised: {exc}"))
        hits += hit
    return out + reader.finish(), hits


def test_corpus_has_streams() -> None:
    assert len(STREAMS) >= 30


@pytest.mark.parametrize("path", STREAMS, ids=[f"{p.parent.parent.name}/{p.parent.name}" for p in STREAMS])
def test_recorded_streams_read_the_same(path: Path) -> None:
    payloads = [e.data for e in sse_events(path.read_bytes())]
    dialect = path.parent.parent.name
    fast, _ = read(dialect, payloads, learn=True)
    slow, _ = read(dialect, payloads, learn=False)
    assert fast == slow


def test_the_template_path_is_taken_on_the_corpus() -> None:
    hits = total = 0
    for path in STREAMS:
        payloads = [e.data for e in sse_events(path.read_bytes())]
        hits += read(path.parent.parent.name, payloads, learn=True)[1]
        total += len(payloads)
    assert hits > total // 4, (hits, total)


# --- generated streams --------------------------------------------------------------------------------------

TEXT = st.lists(
    st.sampled_from(["a", " ", "é", '"', "\\", "\n", "🙂", "<think>", "</think>", "\x00"]), max_size=5
).map("".join)
SEPARATORS = st.sampled_from([(",", ":"), (", ", ": ")])


@st.composite
def chunk(draw: st.DrawFn) -> str:
    """One chunk's JSON: mostly plain text in the stream's fixed layout, sometimes anything else."""
    delta: dict[str, Any] = {"content": draw(TEXT)}
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    kind = draw(st.sampled_from(["plain"] * 6 + ["role", "extra", "odd"]))
    if kind == "role":
        delta["role"] = "assistant"
    elif kind == "extra":
        key, value = draw(
            st.sampled_from(
                [
                    ("reasoning_content", "r"),
                    ("reasoning", "r"),
                    ("refusal", "no"),
                    ("tool_calls", [{"index": 0, "id": "x", "function": {"name": "f", "arguments": "{"}}]),
                    ("function_call", {"name": "g", "arguments": "1"}),
                    ("content", None),
                    ("content", 5),
                ]
            )
        )
        delta[key] = value
    elif kind == "odd":
        key, value = draw(
            st.sampled_from(
                [
                    ("finish_reason", "stop"),
                    ("index", 1),
                    ("logprobs", {"content": [{"token": "a", "logprob": -1.0, "top_logprobs": []}]}),
                    ("usage", {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
                    ("error", {"message": "boom"}),
                    ("object", "error"),
                    ("obfuscation", "xyz"),
                ]
            )
        )
        if key in ("finish_reason", "index", "logprobs"):
            choice[key] = value
        else:
            body[key] = value
    body["choices"] = [choice]
    text = json.dumps(body, separators=draw(SEPARATORS), ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 30)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # garbage: cut anywhere
    return text


@settings(max_examples=300)
@given(
    st.sampled_from(["openai", "deepseek", "think-tags", "think-tags-open", "ollama"]),
    st.lists(chunk(), max_size=12),
)
def test_generated_streams_read_the_same(dialect: str, payloads: list[str]) -> None:
    fast, _ = read(dialect, payloads, learn=True)
    slow, _ = read(dialect, payloads, learn=False)
    assert fast == slow


def test_the_template_cuts_around_the_content() -> None:
    reader = ChatStreamReader(get_dialect("openai").response, CountingIds())
    # The text also appears as the model's name, before the content: the template must still
    # cut around the content.
    first = '{"id":"x","model":" a","choices":[{"index":0,"delta":{"content":" a"}}]}'
    reader.feed_data(first)
    assert reader._template == TextTemplate(
        '{"id":"x","model":" a","choices":[{"index":0,"delta":{"content":', "}}]}"
    )
    assert reader.feed_data(first.replace('" a"}', '"b\\"c"}')) == [TextDelta('b"c')]

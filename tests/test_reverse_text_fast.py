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

from shim.translate import chat_over_responses
from shim.translate.chat_over_responses import ChatChoiceDriver
from shim.translate.chat_writer import ReasoningMode
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
) -> list[Any]:
    with pytest.MonkeyPatch.context() as patch:
        if not short:
            patch.setattr(chat_over_responses, "_TEXT_DELTA", "(never)")
        driver = ChatChoiceDriver(
            completion_id="chatcmpl-t",
            created=1,
            model=model,
            reasoning=mode,
            include_usage=True,
            stops=stops,
            choice=choice,
        )
        out = driver.start()
        for chunk in chunks:
            out += driver.feed(chunk)
        out += driver.finish()
        return [
            [c.encode_chunk(chunk) for chunk in out],
            msgspec.json.encode(driver.completion),
            msgspec.json.encode(driver.reasoning_items()),
            driver.usage,
            driver.upstream_id,
            driver.stopped,
            (driver.reader._streamed, driver.reader._parts),  # what the reader noted
        ]


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_corpus_has_streams() -> None:
    assert len(STREAMS) >= 10


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", STREAMS, ids=[str(p.relative_to(ROOT)) for p in STREAMS])
def test_recorded_streams_write_the_same(path: Path, mode: ReasoningMode) -> None:
    chunks = split(path.read_bytes(), 97)
    short = outcome(chunks, short=True, mode=mode)
    assert short == outcome(chunks, short=False, mode=mode)
    assert short[0]  # the stream wrote chunks


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


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(text_event(), st.sampled_from(OTHERS)), max_size=12),
    st.sampled_from(MODES),
    st.sampled_from(["m", None]),
    st.integers(min_value=1, max_value=64),
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
    assert outcome(chunks, short=True, **options) == outcome(chunks, short=False, **options)

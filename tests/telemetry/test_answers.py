"""``AnswerReader`` (shim/tracing/answers.py): id, model, usage and finish reasons of every answer
shape, whatever the chunking (every split point of each stream gives the same answer), and the
events it skips without decoding."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest

from shim.tracing.answers import Answer, AnswerReader


def _sse(events: list[dict[str, Any]], *, compact: bool = True, done: bool = True) -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    out = b"".join(b"data: " + json.dumps(e, separators=separators).encode() + b"\n\n" for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def _chunk(content: str | None, finish: str | None = None, index: int = 0, **extra: Any) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {
        "id": "chatcmpl-1",
        "model": "m-2025",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        **extra,
    }


CHAT_STREAM = [
    _chunk(""),
    _chunk("Hel"),
    _chunk("lo"),
    _chunk(None, "stop"),
    {
        "id": "chatcmpl-1",
        "model": "m-2025",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    },
]
RESOURCE = {
    "id": "resp_1",
    "model": "m-2025",
    "status": "incomplete",
    "incomplete_details": {"reason": "max_output_tokens"},
    "usage": {"input_tokens": 9, "output_tokens": 16},
    "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hello"}]}],
}
RESPONSES_STREAM = [
    {"type": "response.created", "response": {**RESOURCE, "status": "in_progress", "usage": None}},
    {"type": "response.output_text.delta", "delta": "Hello"},
    {"type": "response.incomplete", "response": RESOURCE},
]
CHAT = Answer(id="chatcmpl-1", model="m-2025", input_tokens=5, output_tokens=2, finish_reasons=["stop"])
RESPONSES = Answer(
    id="resp_1", model="m-2025", input_tokens=9, output_tokens=16, finish_reasons=["max_output_tokens"]
)

CASES = [
    pytest.param("chat", True, _sse(CHAT_STREAM), CHAT, id="chat-sse-compact"),
    pytest.param("chat", True, _sse(CHAT_STREAM, compact=False), CHAT, id="chat-sse-spaced"),
    pytest.param(
        "chat",
        True,
        _sse(CHAT_STREAM[:-1]),
        Answer(id="chatcmpl-1", model="m-2025", finish_reasons=["stop"]),
        id="chat-sse-no-usage",
    ),
    pytest.param(
        "chat",
        True,
        _sse([_chunk("a", index=1), _chunk("b", "length", index=1), _chunk(None, "stop", index=0)]),
        Answer(id="chatcmpl-1", model="m-2025", finish_reasons=["stop", "length"]),
        id="chat-sse-two-choices",
    ),
    pytest.param(
        "chat",
        False,
        json.dumps(
            {
                "id": "chatcmpl-1",
                "model": "m-2025",
                "choices": [{"index": 0, "message": {"content": "Hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2},
            }
        ).encode(),
        CHAT,
        id="chat-json",
    ),
    pytest.param("responses", True, _sse(RESPONSES_STREAM, done=False), RESPONSES, id="responses-sse"),
    pytest.param("responses", False, json.dumps(RESOURCE).encode(), RESPONSES, id="responses-json"),
    pytest.param(
        "responses",
        False,
        json.dumps({**RESOURCE, "status": "completed", "incomplete_details": None}).encode(),
        Answer(id="resp_1", model="m-2025", input_tokens=9, output_tokens=16, finish_reasons=["stop"]),
        id="responses-completed",
    ),
    pytest.param("chat", False, b"<html>502</html>", Answer(), id="not-json"),
    pytest.param("chat", True, b"data: {broken\n\n" + _sse(CHAT_STREAM), CHAT, id="a-bad-event-skipped"),
]


@pytest.mark.parametrize(("kind", "stream", "body", "expected"), CASES)
def test_every_split_gives_the_same_answer(
    kind: Literal["chat", "responses"], stream: bool, body: bytes, expected: Answer
) -> None:
    for cut in range(len(body) + 1):
        reader = AnswerReader(kind, stream=stream)
        reader.feed(body[:cut])
        reader.feed(body[cut:])
        assert reader.finish() == expected, f"split at {cut}"


@pytest.mark.parametrize(
    ("kind", "body", "text"),
    [
        pytest.param("chat", _sse(CHAT_STREAM), "Hello", id="chat"),
        pytest.param(
            "responses",
            _sse(RESPONSES_STREAM, done=False),
            json.dumps(RESOURCE["output"], separators=(",", ":")),
            id="responses",
        ),
    ],
)
def test_content_is_kept_only_when_asked(kind: Literal["chat", "responses"], body: bytes, text: str) -> None:
    for content in (False, True):
        reader = AnswerReader(kind, stream=True, content=content)
        reader.feed(body)
        assert reader.finish().output_text == (text if content else None)


def test_events_that_hold_nothing_wanted_are_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[bytes] = []
    reader = AnswerReader("chat", stream=True)
    real = reader._chat_body
    monkeypatch.setattr(reader, "_chat_body", lambda body: (decoded.append(body.id or b""), real(body)))
    nulls = [{**chunk, "usage": None} for chunk in CHAT_STREAM[:-1]]  # as vLLM sends them
    reader.feed(_sse([*nulls, CHAT_STREAM[-1]], compact=False))
    assert reader.finish() == CHAT
    assert len(decoded) == 3  # the first (its model), the finish reason, the usage: not "Hel", "lo"

"""``accumulate``: chunk streams folded into the completion a non-streaming call returns.

Each row is a list of chunk payloads (as an upstream sends them) and the parts of the folded
completion it must produce. The fixture corpus checks the same module end to end
(``test_fixtures.py::test_stream_equals_completion``); these rows pin the merge rules.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.fixtures.accumulate import accumulate
from shim.wire import chat as c


def _chunk(choices: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "created": 7, "model": "m", **top, "choices": choices}


def _delta(delta: dict[str, Any], finish: str | None = None, index: int = 0, **extra: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish, **extra}


def _call(
    index: int | None, args: str, call_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"function": {"arguments": args}}
    if index is not None:
        call["index"] = index
    if call_id is not None:
        call["id"] = call_id
        call["type"] = "function"
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def _lp(token: str) -> dict[str, Any]:
    return {"token": token, "logprob": -1.0, "bytes": None, "top_logprobs": []}


CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "text": (
        [
            _chunk([_delta({"role": "assistant", "content": ""})]),
            _chunk([_delta({"content": "Hi"})]),
            _chunk([_delta({"content": " there"})]),
            _chunk([_delta({}, "stop")]),
        ],
        {
            "choices[0].message.content": "Hi there",
            "choices[0].finish_reason": "stop",
            "choices[0].message.tool_calls": None,
            "usage": None,
        },
    ),
    "reasoning fields concatenate separately": (
        [
            _chunk([_delta({"reasoning_content": "a"})]),
            _chunk([_delta({"reasoning": "x"})]),
            _chunk([_delta({"reasoning_content": "b", "content": "c"})]),
        ],
        {
            "choices[0].message.reasoning_content": "ab",
            "choices[0].message.reasoning": "x",
            "choices[0].message.content": "c",
        },
    ),
    "refusal": (
        [_chunk([_delta({"refusal": "No"})]), _chunk([_delta({"refusal": "."}, "stop")])],
        {"choices[0].message.refusal": "No.", "choices[0].message.content": None},
    ),
    "tool calls by index, interleaved": (
        [
            _chunk([_delta(_call(0, "", "call_a", "f"))]),
            _chunk([_delta(_call(1, "", "call_b", "g"))]),
            _chunk([_delta(_call(1, "{}"))]),
            _chunk([_delta(_call(0, '{"x"'))]),
            _chunk([_delta(_call(0, ":1}"))]),
        ],
        {
            "choices[0].message.tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
                {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ]
        },
    ),
    "tool calls without index: an id starts a call, a bare fragment continues it": (
        [
            _chunk([_delta(_call(None, "{", "call_a", "f"))]),
            _chunk([_delta(_call(None, "}"))]),
            _chunk([_delta(_call(None, "{}", "call_b", "g"))]),
        ],
        {
            "choices[0].message.tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ]
        },
    ),
    "legacy function_call": (
        [
            _chunk([_delta({"function_call": {"name": "f", "arguments": "{"}})]),
            _chunk([_delta({"function_call": {"arguments": "}"}})]),
        ],
        {"choices[0].message.function_call": {"name": "f", "arguments": "{}"}},
    ),
    "logprobs append": (
        [
            _chunk([_delta({"content": "a"}, logprobs={"content": [_lp("a")], "refusal": None})]),
            _chunk([_delta({"content": "b"}, logprobs={"content": [_lp("b")], "refusal": None})]),
        ],
        {"choices[0].logprobs": {"content": [_lp("a"), _lp("b")], "refusal": None}},
    ),
    "usage from the trailing usage-only chunk; first non-empty ids win": (
        [
            _chunk([], id="", model="", created=0),
            _chunk([_delta({"content": "a"}, "stop")]),
            _chunk(
                [],
                id="other",
                model="other",
                usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            ),
        ],
        {
            "id": "chatcmpl-1",
            "model": "m",
            "created": 7,
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": 1,
                "total_tokens": 4,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            },
        },
    ),
    "choices kept apart by index": (
        [
            _chunk([_delta({"content": "a"}, index=1), _delta({"content": "b"}, index=0)]),
            _chunk([_delta({"content": "c"}, "stop", index=1)]),
        ],
        {
            "choices[0].message.content": "b",
            "choices[1].message.content": "ac",
            "choices[1].finish_reason": "stop",
            "choices[0].finish_reason": None,
        },
    ),
    "finish_reason: the last non-null one": (
        [_chunk([_delta({"content": "a"}, "length")]), _chunk([_delta({}, None)])],
        {"choices[0].finish_reason": "length"},
    ),
}


def _get(data: Any, path: str) -> Any:
    for part in path.replace("]", "").replace("[", ".").split("."):
        data = data[int(part)] if part.isdigit() else data.get(part)
    return data


@pytest.mark.parametrize(("chunks", "expected"), CASES.values(), ids=CASES.keys())
def test_accumulate(chunks: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    completion = accumulate(c.decode_chunk(json.dumps(chunk)) for chunk in chunks)
    body = json.loads(c.encode_completion(completion))
    assert body["object"] == "chat.completion"
    assert {path: _get(body, path) for path in expected} == expected

"""``tool_rounds``: the rounds of calls the current turn has run (the loop guard's count)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from shim.translate.tool_rounds import tool_rounds
from shim.wire import responses as r

USER = {"type": "message", "role": "user", "content": "Go"}
ASSISTANT = {"type": "message", "role": "assistant", "content": "Done."}
REASONING = {"type": "reasoning", "summary": []}


def call(n: int) -> dict[str, Any]:
    return {"type": "function_call", "call_id": f"c{n}", "name": "f", "arguments": "{}"}


def out(n: int) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": f"c{n}", "output": "ok"}


CASES = {
    "no calls": ([USER], 0),
    "one call, no output yet": ([USER, call(1)], 1),
    "one round": ([USER, call(1), out(1)], 1),
    "parallel calls are one round": ([USER, call(1), call(2), out(1), out(2)], 1),
    "reasoning inside a round": ([USER, REASONING, call(1), REASONING, call(2), out(1), out(2)], 1),
    "two rounds": ([USER, call(1), out(1), call(2), out(2)], 2),
    "two rounds with reasoning first": ([USER, REASONING, call(1), out(1), REASONING, call(2), out(2)], 2),
    "only since the last user message": ([USER, call(1), out(1), ASSISTANT, USER, call(2), out(2)], 1),
    "a new user message resets": ([USER, call(1), out(1), USER], 0),
    "an assistant message does not reset": ([USER, call(1), out(1), ASSISTANT, call(2), out(2)], 2),
    "no user message at all": ([call(1), out(1), call(2)], 2),
}


@pytest.mark.parametrize(("items", "rounds"), CASES.values(), ids=CASES.keys())
def test_tool_rounds(items: list[dict[str, Any]], rounds: int) -> None:
    assert tool_rounds(msgspec.convert(items, list[r.ItemParam])) == rounds

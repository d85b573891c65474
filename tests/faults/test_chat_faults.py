"""The same faults on POST /v1/chat/completions (a ``chat`` route: pass-through).

Before the first byte: the same envelope and status as the Responses side. After it: the stream
ends with a final error chunk (``data: {"error": {...}}``) naming the cause, a stream cut off
before ``[DONE]`` included; other bytes are passed through as the upstream sent them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.faults.test_upstream_faults import FAULTS, _error, _url, timeouts_for
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim

# Stream-phase outcomes on the Chat side: the code of the final error chunk, or "completed".
CHAT_STREAM: dict[str, str] = {
    "200-malformed-json": "upstream_stream_truncated",
    "stream-without-finish-or-done": "upstream_stream_truncated",
    "garbage-lines-in-sse": "completed",  # pass-through: the lines reach the client as sent
    "headers-then-silence": "upstream_timeout",
    "slow-drip-under-timeout": "completed",
    "503-then-ok": "completed",
    "reset-mid-answer": "upstream_reset",
    "enormous-answer": "upstream_response_too_large",
    "total-time-limit": "upstream_timeout",
    "gzip-answer-decoded": "completed",  # decoded: the client gets plain SSE
    "gzip-bomb-cut-by-size-limit": "upstream_response_too_large",
}


# Known gaps, strict so a fix shows up: none at the moment.
GAPS: dict[tuple[str, bool], str] = {}


def _data_lines(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.split("\n") if line.startswith("data: ")]


def _cases() -> list[Any]:
    cases = []
    for row in FAULTS:
        for stream in (False, True):
            gap = GAPS.get((row[0], stream))
            marks = [pytest.mark.xfail(strict=True, reason=gap)] if gap else []
            name = f"{row[0]}-{'sse' if stream else 'json'}"
            cases.append(pytest.param(row[0], *row[1:6], stream, id=name, marks=marks))
    return cases


@pytest.mark.parametrize(
    ("name", "model", "url", "options", "json_outcome", "sse_outcome", "stream"), _cases()
)
async def test_chat_fault_outcome(
    fault: FaultUpstream,
    name: str,
    model: str,
    url: str,
    options: dict[str, Any],
    json_outcome: Any,
    sse_outcome: Any,
    stream: bool,
) -> None:
    if stream and not isinstance(sse_outcome[0], int):
        assert name in CHAT_STREAM, "every stream-phase fault needs its Chat outcome in CHAT_STREAM"
    shim = LiveShim(_url(url, fault), **{"timeouts": timeouts_for(model), **options})
    try:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        async with asyncio.timeout(10):
            response = await shim.client.post("/v1/chat/completions", json=body)
        outcome = sse_outcome if stream else json_outcome
        if isinstance(outcome, tuple) and isinstance(outcome[0], int):
            assert response.status_code == outcome[0], response.text[:300]
            assert _error(response)["code"] == outcome[1]
        elif not stream:
            if outcome == "completed":
                assert response.status_code == 200, response.text[:300]
                assert response.json()["choices"][0]["message"]["content"] == "The fault upstream answers."
            else:
                assert response.status_code == outcome[0]
        else:
            assert response.status_code == 200
            lines = _data_lines(response.text)
            expected = CHAT_STREAM[name]
            if expected == "completed":
                assert lines[-1] == "[DONE]"
            else:
                assert "[DONE]" not in lines
                assert json.loads(lines[-1])["error"]["code"] == expected
    finally:
        await shim.aclose()

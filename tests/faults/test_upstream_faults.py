"""Every upstream fault gets a defined outcome on POST /v1/responses, JSON and SSE.

The upstream is ``FaultUpstream``, a real HTTP server on loopback; the request's model picks the
fault. Before the first byte reaches the client a failure is an error envelope with a status
(retried first when transient); after it, the stream ends with ``error`` + ``response.failed``
and the failed response is stored as failed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from shim.settings import Timeouts
from tests.server.harness import asgi_post, parse_sse
from tests.support.fault_upstream import FaultUpstream, refused_url
from tests.support.live_shim import LiveShim

FAST = Timeouts(connect=2.0, first_byte=0.4, idle=0.4, total=30.0, keepalive=15.0)
# Where a row is not about a timeout, a stall of the test machine (another process busy on both
# cores, a full collection of the test process's heap) must not turn its outcome into one: a CI run
# saw ``drop-after-body`` and ``garbage`` answered 504 after 0.58 and 0.73 s.
STEADY = Timeouts(connect=2.0, first_byte=5.0, idle=5.0, total=30.0, keepalive=15.0)
# the fault models whose rows are about the first-byte and idle limits
TIMED = frozenset({"hang", "silence", "drip"})


def timeouts_for(model: str) -> Timeouts:
    return FAST if model in TIMED else STEADY


# A failure the client sees before any byte: (status, error code).
Before = tuple[int, str]
# What a stream ends with: "completed", or ("failed", error code).
Ends = str | tuple[str, str]

# id, model (fault), url ("fault", "refused", "dns"), shim options, JSON outcome, SSE outcome, upstream calls
FAULTS: list[tuple[str, str, str, dict[str, Any], Before | str, Before | Ends, int | None]] = [
    ("connection-refused", "ok", "refused", {}, (502, "upstream_unreachable"), (502, "upstream_unreachable"), None),
    ("dns-failure", "ok", "dns", {}, (502, "upstream_unreachable"), (502, "upstream_unreachable"), None),
    ("timeout-before-headers", "hang", "fault", {"retries": 2}, (504, "upstream_timeout"), (504, "upstream_timeout"), 1),
    ("headers-then-silence", "silence", "fault", {}, (504, "upstream_timeout"), ("failed", "upstream_timeout"), 1),
    ("slow-drip-under-timeout", "drip", "fault", {}, "completed", "completed", 1),
    ("429-retry-after-retried", "status-429", "fault", {"retries": 2}, (429, "rate_limit_exceeded"), (429, "rate_limit_exceeded"), 3),
    ("429-bare-retried", "status-429-bare", "fault", {"retries": 1}, (429, "rate_limit_exceeded"), (429, "rate_limit_exceeded"), 2),
    ("429-long-retry-after-passed-on", "status-429-long", "fault", {"retries": 2}, (429, "rate_limit_exceeded"), (429, "rate_limit_exceeded"), 1),
    ("enormous-error-body", "huge-error", "fault", {}, (502, "upstream_error"), (502, "upstream_error"), 1),
    ("500-not-retried", "status-500", "fault", {"retries": 2}, (502, "upstream_error"), (502, "upstream_error"), 1),
    ("502-retried", "status-502", "fault", {"retries": 1}, (502, "upstream_error"), (502, "upstream_error"), 2),
    ("503-retried", "status-503", "fault", {"retries": 2}, (502, "upstream_error"), (502, "upstream_error"), 3),
    ("503-then-ok", "flaky-503", "fault", {"retries": 1}, "completed", "completed", 2),
    ("200-malformed-json", "malformed", "fault", {}, (502, "upstream_invalid_response"), ("failed", "upstream_stream_truncated"), 1),
    ("stream-without-finish-or-done", "truncated", "fault", {}, (502, "upstream_reset"), ("failed", "upstream_stream_truncated"), 1),
    ("garbage-lines-in-sse", "garbage", "fault", {}, "completed", ("failed", "upstream_invalid_response"), 1),
    ("reset-mid-answer", "reset", "fault", {}, (502, "upstream_reset"), ("failed", "upstream_reset"), 1),
    ("enormous-answer", "huge", "fault", {"max_upstream_response_bytes": 200_000}, (502, "upstream_response_too_large"), ("failed", "upstream_response_too_large"), 1),
    ("drop-after-body-not-resent", "drop-after-body", "fault", {"retries": 2}, (502, "upstream_reset"), (502, "upstream_reset"), 1),
    ("reset-after-body-not-resent", "reset-after-body", "fault", {"retries": 2}, (502, "upstream_reset"), (502, "upstream_reset"), 1),
    ("gzip-answer-decoded", "gzip", "fault", {}, "completed", "completed", 1),
    ("gzip-400-read-decoded", "gzip-400", "fault", {}, (400, "context_length_exceeded"), (400, "context_length_exceeded"), 1),
    ("gzip-bomb-cut-by-size-limit", "gzip-bomb", "fault", {"max_upstream_response_bytes": 200_000, "timeouts": Timeouts(first_byte=5, idle=5, total=30)}, (502, "upstream_response_too_large"), ("failed", "upstream_response_too_large"), 1),
    ("huge-headers-refused", "huge-headers", "fault", {"retries": 2}, (502, "upstream_invalid_response"), (502, "upstream_invalid_response"), 1),
    ("total-time-limit", "drip", "fault", {"timeouts": Timeouts(first_byte=0.4, idle=0.4, total=0.15)}, (504, "upstream_timeout"), ("failed", "upstream_timeout"), 1),
]  # fmt: skip


def _url(kind: str, fault: FaultUpstream) -> str:
    return {"fault": fault.url, "refused": refused_url(), "dns": "http://nonexistent.invalid/v1"}[kind]


def _error(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    data = response.json()
    assert set(data) == {"error"} and set(data["error"]) == {"message", "type", "param", "code"}, data
    error: dict[str, Any] = data["error"]
    return error


def _events(text: str) -> list[dict[str, Any]]:
    assert text.endswith("data: [DONE]\n\n"), text[-300:]
    pairs, _ = parse_sse(text)
    return [json.loads(data) for _, data in pairs]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    ("model", "url", "options", "json_outcome", "sse_outcome", "calls"),
    [pytest.param(*row[1:], id=row[0]) for row in FAULTS],
)
async def test_fault_outcome(
    fault: FaultUpstream,
    model: str,
    url: str,
    options: dict[str, Any],
    json_outcome: Before | str,
    sse_outcome: Before | Ends,
    calls: int | None,
    stream: bool,
) -> None:
    shim = LiveShim(_url(url, fault), **{"timeouts": timeouts_for(model), **options})
    try:
        async with asyncio.timeout(10):  # never a hang
            response = await shim.client.post(
                "/v1/responses", json={"model": model, "input": "hi", "stream": stream}
            )
        outcome = sse_outcome if stream else json_outcome
        if isinstance(outcome, tuple) and isinstance(outcome[0], int):
            assert response.status_code == outcome[0], response.text[:300]
            error = _error(response)
            assert error["code"] == outcome[1]
            if model == "status-429":
                assert response.headers.get("retry-after") == "0"
            if model == "status-429-long":
                assert response.headers.get("retry-after") == "3600"
        elif not stream:
            assert response.status_code == 200, response.text[:300]
            assert response.json()["status"] == outcome
            assert response.json()["output"][0]["content"][0]["text"] == "The fault upstream answers."
        else:
            assert response.status_code == 200
            events = _events(response.text)
            assert events[0]["type"] == "response.created"
            final = events[-1]["response"]
            if outcome == "completed":
                assert events[-1]["type"] == "response.completed"
                assert final["output"][0]["content"][0]["text"] == "The fault upstream answers."
            else:
                assert isinstance(outcome, tuple)
                assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
                assert events[-2]["error"]["code"] == outcome[1]
                assert final["status"] == "failed" and final["error"]["code"] == outcome[1]
                stored = await shim.client.get(f"/v1/responses/{final['id']}")
                assert stored.status_code == 200, "a failed response that was to be stored is stored"
                assert stored.json()["status"] == "failed"
        if calls is not None:
            assert fault.requests[model] == calls
        assert (await shim.client.get("/healthz")).status_code == 200
    finally:
        await shim.aclose()


async def test_a_request_that_reached_the_upstream_is_never_sent_again(fault: FaultUpstream) -> None:
    """RFC 9112 §9.3.1: a POST that may have reached the upstream is not re-sent, not even on a
    reused keep-alive connection that the upstream dropped (the shim once sent it up to 6 times)."""
    shim = LiveShim(fault.url, retries=2, timeouts=STEADY)
    try:
        warm = await shim.client.post("/v1/responses", json={"model": "ok", "input": "hi"})
        assert warm.status_code == 200  # the connection is now pooled, and is reused below
        response = await shim.client.post("/v1/responses", json={"model": "drop-after-body", "input": "hi"})
        assert fault.requests["drop-after-body"] == 1
        assert fault.connections_seen == 1, "the dropped request was not sent on a fresh connection"
        assert response.status_code == 502 and _error(response)["code"] == "upstream_reset"
        assert "not retried" in _error(response)["message"]
    finally:
        await shim.aclose()


async def test_upstream_is_asked_for_identity_encoding(fault: FaultUpstream) -> None:
    shim = LiveShim(fault.url, timeouts=STEADY)
    try:
        for stream in (False, True):
            response = await shim.client.post(
                "/v1/responses", json={"model": "ok", "input": "hi", "stream": stream}
            )
            assert response.status_code == 200
        assert fault.accept_encodings == ["identity", "identity"]
    finally:
        await shim.aclose()


async def test_upstream_header_flood_is_cut_early(fault: FaultUpstream) -> None:
    """64 MiB of answer headers: refused after the first few KiB, not buffered (memory bounded)."""
    shim = LiveShim(fault.url, timeouts=STEADY)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await shim.client.post("/v1/responses", json={"model": "huge-headers", "input": "hi"})
        assert response.status_code == 502
        error = _error(response)
        assert error["code"] == "upstream_invalid_response"
        assert "header" in error["message"].lower() or "8190" in error["message"], error["message"]
        assert loop.time() - started < 2.0
        assert fault.header_bytes_sent < 16 << 20, fault.header_bytes_sent
    finally:
        await shim.aclose()


async def test_backoff_honours_retry_after_and_grows(fault: FaultUpstream) -> None:
    """Two retries without Retry-After wait about 0.25 s then 0.5 s (+ up to 25% jitter)."""
    shim = LiveShim(fault.url, retries=2, timeouts=STEADY)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await shim.client.post("/v1/responses", json={"model": "status-429-bare", "input": "hi"})
        elapsed = loop.time() - started
        assert response.status_code == 429
        assert fault.requests["status-429-bare"] == 3
        assert 0.75 <= elapsed < 2.5, elapsed  # 0.25 s + 0.5 s, each up to 25 % longer; slack for load
    finally:
        await shim.aclose()


@pytest.mark.parametrize("model", ["stall", "huge", "drip"])
async def test_client_disconnect_cancels_upstream(fault: FaultUpstream, model: str) -> None:
    """A client that hangs up mid-stream: the upstream connection is gone within a second."""
    shim = LiveShim(fault.url, timeouts=Timeouts(first_byte=5, idle=30, total=60))
    try:
        body = json.dumps({"model": model, "input": "hi", "stream": True}).encode()
        async with asyncio.timeout(5):
            chunks = await asgi_post(shim.app, "/v1/responses", body, hang_up_after_first_chunk=True)
        assert chunks and b"response.created" in chunks[0]
        assert fault.connections_seen == 1
        assert await fault.wait_connections(0, within=1.0), "the upstream request was not cancelled"
    finally:
        await shim.aclose()

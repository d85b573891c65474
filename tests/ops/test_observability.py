"""Request ids, the JSON access log, Prometheus metrics, /readyz and graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
import uvicorn

from shim.http.state import app_state
from shim.settings import Timeouts
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim


@pytest.fixture
async def shim(fault: FaultUpstream) -> Any:
    shim = LiveShim(fault.url, retries=1, timeouts=Timeouts(first_byte=2, idle=2))
    yield shim
    await shim.aclose()


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "shim.access"]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        pytest.param("abc-123.XYZ", True, id="accepted"),
        pytest.param("x" * 129, False, id="too-long"),
        pytest.param("bad id\twith space", False, id="bad-characters"),
        pytest.param(None, False, id="absent"),
    ],
)
async def test_request_id(shim: LiveShim, sent: str | None, kept: bool) -> None:
    headers = {"x-request-id": sent} if sent is not None else {}
    for path in ("/healthz", "/v1/nope"):
        response = await shim.client.get(path, headers=headers)
        rid = response.headers["x-request-id"]
        assert (rid == sent) is kept
        if not kept:
            assert rid.startswith("req_") and len(rid) == 36


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_one_json_log_line_per_request(
    shim: LiveShim, fault: FaultUpstream, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    caplog.set_level(logging.INFO, logger="shim.access")
    response = await shim.client.post(
        "/v1/responses",
        json={"model": "ok", "input": "hi", "stream": stream},
        headers={"x-request-id": "trace-1"},
    )
    assert response.status_code == 200
    await shim.client.post("/v1/responses", json={"model": "status-503", "input": "hi"})
    first, second = _access_lines(caplog)
    assert first["request_id"] == "trace-1"
    assert first["route"] == "/v1/responses" and first["method"] == "POST"
    assert first["status"] == 200 and first["stream"] is stream
    assert first["upstream"] == f"http://127.0.0.1:{fault.port}"
    assert (first["input_tokens"], first["output_tokens"]) == (3, 4)
    assert isinstance(first["latency_ms"], float) and first["latency_ms"] > 0
    assert second["status"] == 502 and second["upstream_error"] == "status_503"
    assert second["retries"] == 1


async def test_metrics(shim: LiveShim) -> None:
    await shim.client.post("/v1/responses", json={"model": "ok", "input": "hi"})
    await shim.client.post("/v1/responses", json={"model": "ok", "input": "hi", "stream": True})
    await shim.client.post("/v1/responses", json={"model": "status-429", "input": "hi"})
    await shim.client.post("/v1/responses", json={"model": "reset", "input": "hi", "stream": True})
    response = await shim.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    expected = [
        'shim_requests_total{method="POST",route="/v1/responses",status="200"} 3.0',
        'shim_requests_total{method="POST",route="/v1/responses",status="429"} 1.0',
        'shim_request_duration_seconds_count{method="POST",route="/v1/responses"} 4.0',
        'shim_upstream_errors_total{kind="status_429"} 2.0',
        'shim_upstream_errors_total{kind="reset"} 1.0',
        "shim_upstream_retries_total 1.0",
        "shim_open_streams 0.0",
        'shim_store_operations_total{op="set",outcome="ok"} 3.0',
        'shim_tokens_total{direction="output"} 8.0',
    ]
    missing = [line for line in expected if line not in text]
    assert missing == [], text


async def test_metric_labels_stay_bounded(shim: LiveShim) -> None:
    """Clients choose methods and paths: odd ones share the labels ``OTHER`` and ``unmatched``,
    so hostile traffic cannot grow the metrics (and the process) without bound."""
    for n in range(20):
        await shim.client.request(f"FOO{n}", f"/nowhere/{n}")
        await shim.client.get(f"/v1/responses/resp_{n:048d}")
    text = (await shim.client.get("/metrics")).text
    assert 'shim_requests_total{method="OTHER",route="unmatched",status="404"} 20.0' in text, text
    assert 'shim_requests_total{method="GET",route="/v1/responses/{response_id}",status="404"} 20.0' in text
    assert "FOO" not in text and "nowhere" not in text and "resp_0" not in text


async def test_open_streams_gauge_counts_live_streams(fault: FaultUpstream) -> None:
    shim = LiveShim(fault.url, timeouts=Timeouts(first_byte=2, idle=30))
    try:
        body = {"model": "stall", "input": "hi", "stream": True}
        task = asyncio.create_task(shim.client.post("/v1/responses", json=body))
        while fault.open_connections == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert "shim_open_streams 1.0" in (await shim.client.get("/metrics")).text
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await shim.aclose()


async def test_readyz(shim: LiveShim) -> None:
    ready = await shim.client.get("/readyz")
    assert ready.status_code == 200
    upstream = shim.settings.routes[0].upstream
    assert ready.json() == {
        "status": "ready",
        "checks": {"upstreams": "ok", "store": "ok"},
        "upstreams": {upstream: "closed"},  # each upstream's breaker (docs/upstreams.md)
    }

    async def broken_ping() -> bool:
        raise ConnectionError("store down")

    app_state(shim.app).turns.store.backend.ping = broken_ping
    down = await shim.client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["store"] == "unreachable: ConnectionError"
    assert (await shim.client.get("/healthz")).status_code == 200, "alive, just not ready"


async def _serve(shim: LiveShim, grace: int) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    config = uvicorn.Config(
        shim.app, host="127.0.0.1", port=0, log_level="error", timeout_graceful_shutdown=grace
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("model", "grace", "finished"),
    [
        pytest.param("drip", 5, True, id="stream-finishes-within-grace"),
        pytest.param("stall", 1, False, id="stream-cut-after-grace"),
    ],
)
async def test_graceful_shutdown(fault: FaultUpstream, model: str, grace: int, finished: bool) -> None:
    shim = LiveShim(fault.url, timeouts=Timeouts(first_byte=5, idle=30))
    server, serving, base = await _serve(shim, grace)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            body = {"model": model, "input": "hi", "stream": True}
            async with client.stream("POST", "/v1/responses", json=body) as response:
                chunks = response.aiter_bytes()
                text = (await anext(chunks)).decode()
                server.should_exit = True  # as on SIGTERM
                loop = asyncio.get_running_loop()
                started = loop.time()
                try:
                    async for chunk in chunks:
                        text += chunk.decode()
                except httpx.HTTPError:
                    pass
        assert ("response.completed" in text) is finished
        if not finished:
            assert loop.time() - started < grace + 2
        await asyncio.wait_for(serving, 5)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 5)
        await shim.aclose()

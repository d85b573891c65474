"""Secrets scan: after a session of requests (good, failing, streaming, an upstream that echoes
its key), neither the client key nor the upstream key appears in the logs, the answers (bodies
and headers), the stored records or the metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from shim.http.state import app_state
from shim.upstream.redaction import StreamRedactor
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim

CLIENT_KEY = "sk-client-Zq7Xw3Kp9Lm2Nv8Rt5Yb1Cd4"
UPSTREAM_KEY = "sk-upstream-Hj6Gf2Ds8Aq4Wz0Ex3Rc7Tv9"
KEYS = (CLIENT_KEY, UPSTREAM_KEY)


def _store_dump(shim: LiveShim, store: str, tmp_path: Path) -> bytes:
    backend: Any = app_state(shim.app).turns.store.backend
    if store == "memory":
        values = [v for v, _ in backend._values.values()] + [b"".join(v) for v, _ in backend._lists.values()]
        return b"\n".join([*values, *(k.encode() for k in backend._values)])
    data = b""
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            data += path.read_bytes()
    return data


def _hits(name: str, data: str | bytes) -> list[str]:
    text = data if isinstance(data, str) else data.decode("latin-1")
    found = []
    for key in KEYS:
        for piece in (key, key[-8:], key[:16]):
            if piece in text:
                found.append(f"{name}: {piece!r}")
    return found


@pytest.mark.parametrize("store", ["memory", "diskcache"])
async def test_no_key_leaks_anywhere(
    fault: FaultUpstream, store: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "memory://" if store == "memory" else f"diskcache://{tmp_path / 'store'}"
    shim = LiveShim(fault.url, route={"api_key": UPSTREAM_KEY}, api_keys=(CLIENT_KEY,), store=url)
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    answers: list[str] = []

    async def call(method: str, path: str, **kw: Any) -> Any:
        response = await shim.client.request(method, path, headers={**auth, **kw.pop("headers", {})}, **kw)
        answers.append(response.text + repr(dict(response.headers)))
        return response

    try:
        first = await call("POST", "/v1/responses", json={"model": "ok", "input": "hi"})
        assert first.status_code == 200
        rid = first.json()["id"]
        await call(
            "POST", "/v1/responses", json={"model": "ok", "input": "more", "previous_response_id": rid}
        )
        await call("POST", "/v1/responses", json={"model": "ok", "input": "hi", "stream": True})
        echoed = await call("POST", "/v1/responses", json={"model": "echo-key", "input": "hi"})
        assert echoed.status_code == 401 and "[redacted]" in echoed.text
        streamed = await call(
            "POST", "/v1/responses", json={"model": "echo-key-stream", "input": "hi", "stream": True}
        )
        assert "response.failed" in streamed.text and "[redacted]" in streamed.text
        await call("POST", "/v1/responses", json={"model": "status-500", "input": "hi"})
        await call("POST", "/v1/responses", json={"model": "reset", "input": "hi", "stream": True})
        await call("POST", "/v1/responses", content=b"{not json")
        await call(
            "POST",
            "/v1/responses",
            json={"model": "ok", "input": "hi"},
            headers={"authorization": "Bearer wrong"},
        )
        await call("GET", f"/v1/responses/{rid}")
        await call("GET", f"/v1/responses/{rid}/input_items")
        chat = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}
        for reasoning in ({}, {"x-shim-reasoning": "think_tags"}):  # raw and normalised pass-through
            await call("POST", "/v1/chat/completions", json=chat, headers=reasoning)
            await call("POST", "/v1/chat/completions", json={**chat, "stream": True}, headers=reasoning)
            echoed = await call(
                "POST", "/v1/chat/completions", json={**chat, "model": "echo-key"}, headers=reasoning
            )
            assert echoed.status_code == 401 and "[redacted]" in echoed.text
            streamed = await call(
                "POST",
                "/v1/chat/completions",
                json={**chat, "model": "echo-key-stream", "stream": True},
                headers=reasoning,
            )
            assert "[redacted]" in streamed.text, streamed.text
            await call(
                "POST", "/v1/chat/completions", json={**chat, "model": "status-500"}, headers=reasoning
            )
            for stream in (False, True):  # a 200 answer that repeats the key: JSON and SSE
                answered = await call(
                    "POST",
                    "/v1/chat/completions",
                    json={**chat, "model": "echo-key-answer", "stream": stream},
                    headers=reasoning,
                )
                assert answered.status_code == 200 and "[redacted]" in answered.text, answered.text
            await call(
                "POST",
                "/v1/chat/completions",
                json={**chat, "model": "reset", "stream": True},
                headers=reasoning,
            )
        await call("POST", "/v1/chat/completions", json=chat, headers={"authorization": "Bearer wrong"})
        await call("POST", "/v1/chat/completions", content=b'{"model": "ok", "messages": 3}')
        await call("GET", "/v1/models")
        await call("GET", "/readyz")
        metrics = (await call("GET", "/metrics")).text
        assert "shim_requests_total" in metrics
        assert f"Bearer {UPSTREAM_KEY}" in fault.authorizations, "the upstream key was really used"
        leaks = _hits("logs", caplog.text)
        leaks += _hits("metrics", metrics)
        for n, answer in enumerate(answers):
            leaks += _hits(f"answer {n}", answer)
        leaks += _hits("store", _store_dump(shim, store, tmp_path))
        assert leaks == []
    finally:
        await shim.aclose()


def _websocket_session(shim: LiveShim) -> list[str]:
    """Turns over ``/v1/responses`` WebSocket mode (good, chained, key-echoing, failing, refused),
    then ``/metrics``; every frame and answer as text. Runs in a thread: the test's loop serves the
    fault upstream meanwhile."""
    seen: list[str] = []
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    with TestClient(app=shim.app) as client:
        with client.websocket_connect("/v1/responses", headers=auth) as ws:

            def turn(body: dict[str, Any] | str) -> list[dict[str, Any]]:
                ws.send_text(
                    body if isinstance(body, str) else json.dumps({"type": "response.create", **body})
                )
                frames: list[dict[str, Any]] = []
                while not frames or frames[-1]["type"] not in (
                    "response.completed",
                    "response.failed",
                    "response.incomplete",
                    "error",
                ):
                    text = ws.receive_text(timeout=10)
                    seen.append(text)
                    frames.append(json.loads(text))
                return frames

            first = turn({"model": "ok", "input": "hi"})
            rid = first[-1]["response"]["id"]
            turn({"model": "ok", "input": "more", "previous_response_id": rid})
            echoed = turn({"model": "echo-key", "input": "hi"})
            assert echoed[-1]["type"] == "error" and "[redacted]" in json.dumps(echoed[-1])
            streamed = turn({"model": "echo-key-stream", "input": "hi"})
            assert streamed[-1]["type"] == "response.failed" and "[redacted]" in json.dumps(streamed[-1])
            turn({"model": "reset", "input": "hi"})
            turn("{not json")
        # A wrong key is refused at the handshake (shim.http.auth): the close reason is seen too.
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/v1/responses", headers={"authorization": "Bearer wrong"}),
        ):
            pytest.fail("the handshake was accepted")
        seen.append(refused.value.detail)
        metrics = client.get("/metrics")
        seen.append(metrics.text + repr(dict(metrics.headers)))
    return seen


@pytest.mark.parametrize("store", ["memory", "diskcache"])
async def test_no_key_leaks_over_websocket(
    fault: FaultUpstream, store: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "memory://" if store == "memory" else f"diskcache://{tmp_path / 'store'}"
    shim = LiveShim(fault.url, route={"api_key": UPSTREAM_KEY}, api_keys=(CLIENT_KEY,), store=url)
    try:
        seen = await asyncio.to_thread(_websocket_session, shim)
        assert f"Bearer {UPSTREAM_KEY}" in fault.authorizations, "the upstream key was really used"
        assert any("shim_requests_total" in s for s in seen)
        leaks = _hits("logs", caplog.text)
        for n, text in enumerate(seen):
            leaks += _hits(f"frame {n}", text)
        leaks += _hits("store", _store_dump(shim, store, tmp_path))
        assert leaks == []
    finally:
        await shim.aclose()


@pytest.mark.parametrize("cut", [0, 1, 5, 12, 20, 30, 36, 41, 50])
def test_stream_redactor_cuts_a_key_split_across_chunks(cut: int) -> None:
    """A pass-through stream may split the echoed key anywhere; it is cut out all the same, and
    the bytes around it come out unchanged and in order."""
    data = f'data: {{"error": {{"message": "bad key Bearer {UPSTREAM_KEY} (…{UPSTREAM_KEY[-8:]})"}}}}\n\n'.encode()
    redactor = StreamRedactor(UPSTREAM_KEY)
    out = redactor.feed(data[:cut]) + redactor.feed(data[cut:]) + redactor.flush()
    assert out == data.replace(UPSTREAM_KEY.encode(), b"[redacted]").replace(
        UPSTREAM_KEY[-8:].encode(), b"[redacted]"
    )
    assert _hits("out", out) == []
    tail = redactor.feed(b"plain sk-up")  # a possible key start is held back until it is known
    assert tail == b"plain " and redactor.flush() == b"sk-up"

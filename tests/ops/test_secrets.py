"""Secrets scan: after a session of requests (good, failing, streaming, an upstream that echoes
its key), neither the client key nor the upstream key appears in the logs, the answers (bodies
and headers), the stored records or the metrics.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim

CLIENT_KEY = "sk-client-Zq7Xw3Kp9Lm2Nv8Rt5Yb1Cd4"
UPSTREAM_KEY = "sk-upstream-Hj6Gf2Ds8Aq4Wz0Ex3Rc7Tv9"
KEYS = (CLIENT_KEY, UPSTREAM_KEY)


def _store_dump(shim: LiveShim, store: str, tmp_path: Path) -> bytes:
    backend: Any = shim.app.state.service.store.backend
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
        await call("POST", "/v1/chat/completions", json=chat)
        await call("POST", "/v1/chat/completions", json={**chat, "model": "echo-key"})
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

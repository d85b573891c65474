"""A store that fails (here: Redis on a port nobody listens on) is a 503 ``store_unavailable``
in the OpenAI envelope, from the backend and through the HTTP API, and never leaks its URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from shim.cli.embedded import free_port
from shim.http.app import create_app
from shim.http.state import app_state
from shim.settings import Route, ServerSettings, Settings
from shim.store.backends import KeyValue, open_backend
from shim.store.failures import StoreUnavailable
from shim.upstream.client import UpstreamClient
from tests.support import scripted_chat

CALLS: dict[str, Callable[[KeyValue], Awaitable[object]]] = {
    "get": lambda kv: kv.get("k"),
    "set": lambda kv: kv.set("k", b"v", 60),
    "add": lambda kv: kv.add("k", b"v", 60),
    "compare_and_set": lambda kv: kv.compare_and_set("k", None, b"v", 60),
    "delete": lambda kv: kv.delete("k"),
    "append": lambda kv: kv.append("k", b"v", 60),
    "list_range": lambda kv: kv.list_range("k"),
    "ping": lambda kv: kv.ping(),
}


def _dead_redis() -> str:
    return f"redis://:hunter2@127.0.0.1:{free_port()}/0?socket_connect_timeout=1"


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
async def test_every_backend_call_fails_as_store_unavailable(
    call: Callable[[KeyValue], Awaitable[object]],
) -> None:
    kv = open_backend(_dead_redis())
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await call(kv)
    finally:
        await kv.aclose()
    assert caught.value.http_status == 503 and caught.value.code == "store_unavailable"
    assert "hunter2" not in caught.value.message


async def test_the_api_answers_503_in_the_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIM_SECRET", "s")
    settings = Settings(
        server=ServerSettings(store=_dead_redis()),
        routes=(Route(upstream="http://upstream.test/v1"),),
    )
    upstream = UpstreamClient(settings.server.timeouts, 0, transport=httpx.ASGITransport(scripted_chat.app))
    app = create_app(settings, upstream=upstream)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://shim") as http:
        answer = await http.post("/v1/responses", json={"model": "m", "input": "hi"})
    await upstream.aclose()
    await app_state(app).turns.store.backend.aclose()
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "store_unavailable")
    assert "hunter2" not in answer.text

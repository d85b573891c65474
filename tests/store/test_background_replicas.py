"""Two shim replicas sharing one store, on every backend (Redis a real ``redis-server``): a chain
continues on either replica, and a background response started on one is polled and cancelled
from the other. Each replica opens its own backend client from the same URL, as separate
processes would (``memory://`` cannot be shared that way, so there both get the same instance)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shim.http.state import app_state
from shim.store.backends import KeyValue, open_backend
from tests.server.harness import Shim, build_shim
from tests.server.test_background import Gate, poll, settle

Replicas = tuple[httpx.AsyncClient, httpx.AsyncClient, Shim]


@pytest.fixture
async def replicas(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Replicas, Gate]]:
    monkeypatch.setenv("SHIM_SECRET", "shared-secret")  # replicas share the scoping key
    gate = Gate()
    a, b = build_shim(target=gate), build_shim()
    backends: list[KeyValue] = [open_backend(backend_url)]
    backends.append(backends[0] if backend_url == "memory://" else open_backend(backend_url))
    for shim, backend in zip((a, b), backends, strict=True):
        app_state(shim.app).turns.store.backend = backend
        app_state(shim.app).background.poll = 0.01
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(s.app), base_url="http://shim") for s in (a, b)
    ]
    yield (clients[0], clients[1], a), gate
    gate.open()
    await settle(app_state(a.app).background)
    for client in clients:
        await client.aclose()
    for shim in (a, b):
        await shim.client.aclose()
    for backend in {id(k): k for k in backends}.values():
        await backend.aclose()


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/responses", json={"model": "m", **body})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_chain_alternates_between_replicas(replicas: tuple[Replicas, Gate]) -> None:
    (on_a, on_b, _), gate = replicas
    gate.open()
    first = await create(on_a, input="one")
    second = await create(on_b, input="two", previous_response_id=first["id"])
    third = await create(on_a, input="three", previous_response_id=second["id"])
    assert third["previous_response_id"] == second["id"]
    assert (await on_b.get(f"/v1/responses/{third['id']}")).json() == third


async def test_background_polled_elsewhere(replicas: tuple[Replicas, Gate]) -> None:
    (on_a, on_b, _), gate = replicas
    queued = await create(on_a, input="Hello", background=True)
    assert queued["status"] == "queued"
    await poll(on_b, queued["id"], {"in_progress"})
    gate.open()
    assert (await poll(on_b, queued["id"]))["status"] == "completed"


@pytest.mark.parametrize("action", ["cancel", "delete"])
async def test_background_stopped_elsewhere(replicas: tuple[Replicas, Gate], action: str) -> None:
    (on_a, on_b, a), gate = replicas
    queued = await create(on_a, input="Hello", background=True)
    await poll(on_b, queued["id"], {"in_progress"})
    if action == "cancel":
        response = await on_b.post(f"/v1/responses/{queued['id']}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
    else:
        assert (await on_b.delete(f"/v1/responses/{queued['id']}")).status_code == 200
    await settle(app_state(a.app).background)  # replica a noticed at its next poll and stopped
    assert gate.abandoned == 1, "replica a gave up its upstream request"
    after = await on_a.get(f"/v1/responses/{queued['id']}")
    assert after.status_code == (200 if action == "cancel" else 404)
    if action == "cancel":
        assert after.json()["status"] == "cancelled"

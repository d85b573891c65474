"""The background lease, on every backend (Redis a real ``redis-server``): a replica running a
background response renews a small lease key; when the replica dies (or cannot write its result),
the lease expires and the next poll through another replica ends the record as ``failed`` with
``background_worker_lost`` — within the lease's bound, not after the store's TTL.

A replica "dies" here by losing its store (every call fails, as for a process killed mid-turn
whose writes never land) and then having its task cancelled, or by finishing its turn with the
final write failing. Each replica opens its own backend client from the same URL, as separate
processes would (``memory://`` cannot be shared that way, so there both get the same instance).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shim.http.state import app_state
from shim.store.backends import KeyValue, open_backend
from shim.store.failures import StoreUnavailable
from shim.store.repository import ResponseStore
from shim.turns.background import BackgroundRunner
from tests.server.harness import Shim, build_shim
from tests.server.test_background import Gate, poll, settle

LEASE = 0.4  # seconds: the bound this test holds the replicas to
SLACK = 1.0  # scheduling on a busy 2-core machine


class DeadBackend:
    """The store as a dead replica sees it: every call fails."""

    def __getattr__(self, name: str) -> Any:
        async def fail(*_: Any, **__: Any) -> Any:
            raise StoreUnavailable("The response store is unavailable (test: dead replica).")

        return fail


class CountingBackend:
    """Counts the value reads per key kind (``resp`` records, ``lease`` keys) through to ``inner``."""

    def __init__(self, inner: KeyValue) -> None:
        self.inner = inner
        self.reads: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, key: str) -> bytes | None:
        kind = key.split(":", 1)[0]
        self.reads[kind] = self.reads.get(kind, 0) + 1
        return await self.inner.get(key)


Pair = tuple[httpx.AsyncClient, httpx.AsyncClient, Shim, Shim]


def store_of(shim: Shim) -> ResponseStore:
    store = app_state(shim.app).turns.store
    assert store is not None, "the harness runs with a store"
    return store


@pytest.fixture
async def pair(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Pair, Gate]]:
    monkeypatch.setenv("SHIM_SECRET", "shared-secret")  # replicas share the scoping key
    gate = Gate()
    a, b = build_shim(target=gate), build_shim()
    backends: list[KeyValue] = [open_backend(backend_url)]
    backends.append(backends[0] if backend_url == "memory://" else open_backend(backend_url))
    for shim, backend in zip((a, b), backends, strict=True):
        store_of(shim).backend = backend
        runner: BackgroundRunner = app_state(shim.app).background
        runner.poll = 0.02
        runner.lease = LEASE
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(s.app), base_url="http://shim") for s in (a, b)
    ]
    yield (clients[0], clients[1], a, b), gate
    gate.open()
    await settle(app_state(a.app).background)
    for client in clients:
        await client.aclose()
    for shim in (a, b):
        await shim.client.aclose()
    for backend in {id(k): k for k in backends}.values():
        await backend.aclose()


async def start(client: httpx.AsyncClient) -> dict[str, Any]:
    body = {"model": "m", "input": "Hello", "background": True}
    response = await client.post("/v1/responses", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def die(shim: Shim, gate: Gate, how: str) -> None:
    """Replica ``shim`` loses its store, then its task ends without writing anything."""
    runner: BackgroundRunner = app_state(shim.app).background
    store_of(shim).backend = DeadBackend()
    if how == "killed":
        for task in list(runner._tasks.values()):
            task.cancel()
    else:  # the turn finishes upstream; the final write fails
        gate.open()
    await settle(runner)


@pytest.mark.parametrize("how", ["killed", "final_write_failed"])
async def test_orphan_ends_failed_within_the_lease(pair: tuple[Pair, Gate], how: str) -> None:
    (on_a, on_b, a, _), gate = pair
    queued = await start(on_a)
    await poll(on_b, queued["id"], {"in_progress"})
    died = time.monotonic()
    await die(a, gate, how)
    ended = await poll(on_b, queued["id"])
    took = time.monotonic() - died
    assert ended["status"] == "failed", ended
    assert ended["error"]["code"] == "background_worker_lost"
    assert took < LEASE + SLACK, f"ended after {took:.2f}s; the lease is {LEASE}s"
    again = await on_b.get(f"/v1/responses/{queued['id']}")
    assert again.json() == ended, "the failed record is written, not recomputed per read"


async def test_orphan_can_be_cancelled(pair: tuple[Pair, Gate]) -> None:
    (on_a, on_b, a, _), gate = pair
    queued = await start(on_a)
    await poll(on_b, queued["id"], {"in_progress"})
    await die(a, gate, "killed")
    response = await on_b.post(f"/v1/responses/{queued['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] in {"cancelled", "failed"}
    if response.json()["status"] == "failed":  # the lease had already expired: the cancel found it lost
        assert response.json()["error"]["code"] == "background_worker_lost"


async def test_a_live_worker_keeps_its_lease(pair: tuple[Pair, Gate]) -> None:
    """A turn running several lease periods is never taken for lost, and its replica checks the
    small lease key, not the whole record, while it runs."""
    (on_a, on_b, a, _), gate = pair
    counting = CountingBackend(store_of(a).backend)
    store_of(a).backend = counting
    queued = await start(on_a)
    await poll(on_b, queued["id"], {"in_progress"})
    deadline = time.monotonic() + 3 * LEASE
    while time.monotonic() < deadline:
        current = (await on_b.get(f"/v1/responses/{queued['id']}")).json()
        assert current["status"] == "in_progress", current
        await asyncio.sleep(0.02)
    assert counting.reads.get("resp", 0) == 0, f"replica a re-read the record: {counting.reads}"
    gate.open()
    assert (await poll(on_b, queued["id"]))["status"] == "completed"

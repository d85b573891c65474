"""kill -9 during a burst of stored requests: after a restart every id a client received is
retrievable and every record in the store reads whole.

The shim runs as ``python -m shim serve`` over the scripted upstream (also a subprocess), so the
kill lands wherever the real server happens to be: mid-request, mid-write, between writes.
Each client continues its own ``previous_response_id`` chain, so records grow (to tens of kB)
while the burst runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.store.backends import open_backend
from shim.store.repository import ResponseStore, scope_of
from tests.store.conftest import store_url
from tests.support.processes import Served, serve_script, serve_shim

SECRET = "crash-test-secret-0123456789abcdef0123456789abcdef"
CLIENT_KEY = "sk-crash-client"
CLIENTS = 12
KILL_AFTER = 60  # responses received before the kill; the other clients are mid-request then
PADDING = "lorem ipsum dolor sit amet " * 60  # ~1.6 kB a turn
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    script = ROOT / "tests" / "support" / "scripted_chat.py"
    served = serve_script(script, tmp_path / "upstream.log", what="the scripted upstream", timeout=60)
    try:
        yield served.base_url
    finally:
        served.stop()


def _start_shim(upstream: str, store: str, workdir: Path) -> Served:
    # 60 s: generous, CI machines may be busy. The shim's log gathers both runs.
    args = ("--upstream", upstream, "--store", store)
    return serve_shim(workdir, *args, env={"SHIM_SECRET": SECRET}, timeout=60)


async def _burst(base: str, proc: subprocess.Popen[bytes]) -> tuple[list[str], int]:
    """Chained stored requests from CLIENTS clients; kill -9 the shim once KILL_AFTER answered.
    Returns the ids received and how many requests were in flight at the kill."""
    received: list[str] = []
    in_flight = 0
    at_kill = 0
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}

    async def client(n: int, http: httpx.AsyncClient) -> None:
        nonlocal in_flight, at_kill
        previous: str | None = None
        for turn in range(10_000):
            body: dict[str, Any] = {"model": "m", "input": f"client {n} turn {turn}: {PADDING}"}
            if previous:
                body["previous_response_id"] = previous
            in_flight += 1
            try:
                answer = await http.post(f"{base}/responses", json=body, headers=headers)
            except httpx.TransportError:
                return  # the server died under us: whatever it was doing is not acknowledged
            finally:
                in_flight -= 1
            assert answer.status_code == 200, answer.text
            previous = answer.json()["id"]
            received.append(previous)
            if len(received) == KILL_AFTER:
                at_kill = in_flight
                os.kill(proc.pid, signal.SIGKILL)

    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(n, http) for n in range(CLIENTS)))
    return received, at_kill


async def _records_in(url: str) -> list[tuple[str, str]]:
    """(scope, id) of every response record physically in the store."""
    keys: list[str] = []
    if url.startswith("diskcache://"):
        import diskcache  # type: ignore[import-untyped]

        with diskcache.Cache(url.removeprefix("diskcache://")) as cache:
            keys = [k for k in cache.iterkeys() if isinstance(k, str)]
    else:
        import redis.asyncio as aioredis

        prefix = url.split("prefix=")[1]
        client = aioredis.Redis.from_url(url.split("?")[0])
        keys = [k.decode().removeprefix(prefix) async for k in client.scan_iter(match=f"{prefix}resp:*")]
        await client.aclose()
    return [tuple(k.split(":", 2)[1:]) for k in keys if k.startswith("resp:")]  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["diskcache", "redis"])
async def test_kill_9_mid_burst_loses_no_acknowledged_response(
    kind: str, upstream: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = store_url(kind, tmp_path, request)
    shim = _start_shim(upstream, store, tmp_path)
    try:
        received, at_kill = await _burst(shim.base_url, shim.proc)
        assert shim.proc.wait(timeout=10) == -signal.SIGKILL
        assert at_kill > 0  # the kill landed mid-burst, with requests being served
    finally:
        shim.stop()
    assert len(received) >= KILL_AFTER

    shim = _start_shim(upstream, store, tmp_path)
    base = shim.base_url
    try:
        headers = {"authorization": f"Bearer {CLIENT_KEY}"}
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:
            for response_id in received:
                got = await http.get(f"{base}/responses/{response_id}")
                assert got.status_code == 200, (response_id, got.text)
                assert got.json()["id"] == response_id
            # the newest of each chain still continues (history read back from the store)
            tip = received[-1]
            more = await http.post(
                f"{base}/responses", json={"model": "m", "input": "go on", "previous_response_id": tip}
            )
            assert more.status_code == 200, more.text
    finally:
        shim.stop()

    # Every record physically present (acknowledged or caught mid-burst) decodes whole.
    records = await _records_in(store)
    backend = open_backend(store)
    repo = ResponseStore(backend)
    scope = scope_of(SECRET.encode(), CLIENT_KEY)
    try:
        assert {rid for _, rid in records} >= set(received)
        for record_scope, response_id in records:
            assert record_scope == scope
            loaded = await repo.load(record_scope, response_id)
            assert loaded is not None and loaded.resource.id == response_id, response_id
    finally:
        await backend.aclose()

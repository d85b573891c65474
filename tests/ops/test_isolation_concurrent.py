"""Tenant isolation under concurrency: many callers with distinct credentials create, chain,
stream, retrieve, delete and cancel (background) responses at the same time, and meanwhile try
every way of reaching each other's responses (``tests/server/test_isolation.py``'s attempts).

Every cross-access attempt must look exactly like a missing id (same status, same body apart
from the id), and nobody ever sees another caller's data: each caller's texts carry a tenant
token (``T03#``), and no answer a caller gets, nor any request the upstream gets, holds a token
other than its own caller's. Over the memory and the diskcache store.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.http.state import app_state
from tests.server.harness import Receive, Scope, Send, Shim, build_shim
from tests.server.test_background import poll
from tests.server.test_isolation import ATTEMPTS, MISSING
from tests.support import scripted_chat

TENANTS = 10
ROUNDS = 3
TOKEN = re.compile(r"T\d\d#")

Attempt = Callable[[httpx.AsyncClient, str, dict[str, str]], Awaitable[httpx.Response]]


def _create(i: str, stream: bool = False, background: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "input": "probe", "previous_response_id": i}
    return {**body, "stream": True} if stream else {**body, "background": True} if background else body


# The attempts of ``test_isolation.ATTEMPTS``, made with any caller's credential.
CROSS: dict[str, Attempt] = {
    "get": lambda c, i, h: c.get(f"/v1/responses/{i}", headers=h),
    "delete": lambda c, i, h: c.delete(f"/v1/responses/{i}", headers=h),
    "input_items": lambda c, i, h: c.get(f"/v1/responses/{i}/input_items", headers=h),
    "input_items_paged": lambda c, i, h: c.get(
        f"/v1/responses/{i}/input_items", params={"limit": 1, "order": "asc"}, headers=h
    ),
    "cancel": lambda c, i, h: c.post(f"/v1/responses/{i}/cancel", headers=h),
    "previous_response_id": lambda c, i, h: c.post("/v1/responses", json=_create(i), headers=h),
    "previous_response_id_sse": lambda c, i, h: c.post(
        "/v1/responses", json=_create(i, stream=True), headers=h
    ),
    "previous_response_id_background": lambda c, i, h: c.post(
        "/v1/responses", json=_create(i, background=True), headers=h
    ),
}


def test_the_attempts_are_the_sequential_suites() -> None:
    assert set(CROSS) == set(ATTEMPTS)


class Jitter:
    """The scripted upstream after a random pause of 0-20 ms, so requests overlap; 400-600 ms for
    a text saying ``slow`` (the background turns), so they are still running while others try to
    reach or cancel them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        body = message.get("body", b"")
        pause = 0.4 + self.rng.random() * 0.2 if b"slow" in body else self.rng.random() * 0.02
        await asyncio.sleep(pause)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        await scripted_chat.app(scope, replay, send)


class Tenant:
    def __init__(
        self,
        n: int,
        client: httpx.AsyncClient,
        registry: dict[str, int],
        backgrounds: list[tuple[str, int]],
        running: Callable[[str], bool],
    ) -> None:
        self.n = n
        self.token = f"T{n:02d}#"
        self.headers = {"authorization": f"Bearer sk-tenant-{n:02d}-{'k' * 20}"}
        self.client = client
        self.registry = registry  # response id -> owner, shared: where attackers pick targets
        self.kept: dict[str, str] = {}  # id -> status it must still have at the end
        self.deleted: list[str] = []
        self.running = running
        self.backgrounds = backgrounds  # shared, newest last
        self.cross_attempts = 0
        self.running_hits = 0  # attempts on a background response still running at the time
        self.rng = random.Random(n)

    def seen(self, response: httpx.Response) -> httpx.Response:
        """Every answer this caller gets holds no other caller's token."""
        foreign = set(TOKEN.findall(response.text)) - {self.token}
        assert not foreign, f"tenant {self.n} saw {foreign}: {response.text[:300]}"
        return response

    async def post(self, body: dict[str, Any]) -> httpx.Response:
        return self.seen(await self.client.post("/v1/responses", json=body, headers=self.headers))

    async def own_round(self, r: int) -> None:
        text = f"{self.token} round {r} secret"
        first = await self.post({"model": "m", "input": text})
        assert first.status_code == 200, first.text
        rid = first.json()["id"]
        self.registry[rid] = self.n
        chained = await self.post({"model": "m", "input": f"{self.token} more", "previous_response_id": rid})
        assert chained.status_code == 200, chained.text
        self.registry[chained.json()["id"]] = self.n
        streamed = await self.post({"model": "m", "input": text, "previous_response_id": rid, "stream": True})
        assert streamed.status_code == 200 and "response.completed" in streamed.text
        background = await self.post({"model": "m", "input": f"{text} slow", "background": True})
        assert background.status_code == 200, background.text
        bid = background.json()["id"]
        self.registry[bid] = self.n
        self.backgrounds.append((bid, self.n))
        await asyncio.sleep(self.rng.random() * 0.05)
        if r % 2:
            cancel = self.seen(await self.client.post(f"/v1/responses/{bid}/cancel", headers=self.headers))
            assert cancel.status_code in (200, 400), cancel.text  # 400: it finished first
            if cancel.status_code == 200:
                assert cancel.json()["status"] == "cancelled"
        final = self.seen_json(await poll(self.client, bid, headers=self.headers))
        self.kept[bid] = final["status"]
        for path in (f"/v1/responses/{rid}", f"/v1/responses/{rid}/input_items"):
            got = self.seen(await self.client.get(path, headers=self.headers))
            assert got.status_code == 200 and self.token in got.text
        self.kept[rid] = "completed"
        if r == ROUNDS - 1:  # delete one while others may be attacking it
            gone = self.seen(await self.client.delete(f"/v1/responses/{rid}", headers=self.headers))
            assert gone.status_code == 200
            self.deleted.append(rid)
            del self.kept[rid]

    def seen_json(self, data: dict[str, Any]) -> dict[str, Any]:
        foreign = set(TOKEN.findall(json.dumps(data))) - {self.token}
        assert not foreign, f"tenant {self.n} saw {foreign}"
        return data

    async def attack(self, round_over: asyncio.Event) -> None:
        """Every attempt on other callers' ids (the newest background response still running,
        and one at random), each next to the same attempt on a missing id; in waves
        until this caller's own round is over (at least three), so the waves overlap the
        background turns however slowly a loaded machine runs the round."""
        waves = 0
        while waves < 3 or not round_over.is_set():
            waves += 1
            await asyncio.sleep(0.03)
            targets = [i for i, owner in list(self.registry.items()) if owner != self.n]
            # A background response still running when the wave starts, if there is one: the
            # newest one is often already finished on a loaded machine.
            foreign = [i for i, owner in self.backgrounds if owner != self.n]
            running = [i for i in foreign if self.running(i)]
            newest = (running or foreign)[-1:]
            for target in set(newest + self.rng.sample(targets, min(1, len(targets)))):
                await self.attack_one(target)

    async def attack_one(self, target: str) -> None:
        for name, attempt in CROSS.items():
            if self.running(target):
                self.running_hits += 1
            foreign, missing = await asyncio.gather(
                attempt(self.client, target, self.headers), attempt(self.client, MISSING, self.headers)
            )
            self.seen(foreign)
            assert foreign.status_code == missing.status_code == 404, (name, foreign.text)
            assert foreign.headers["content-type"] == missing.headers["content-type"], name
            assert foreign.text.replace(target, MISSING) == missing.text, name
            self.cross_attempts += 1

    async def run(self) -> None:
        for r in range(ROUNDS):
            round_over = asyncio.Event()

            async def own_round(r: int = r, round_over: asyncio.Event = round_over) -> None:
                try:
                    await self.own_round(r)
                finally:
                    round_over.set()

            await asyncio.gather(own_round(), self.attack(round_over))

    async def check_end(self) -> None:
        for rid, status in self.kept.items():
            got = self.seen(await self.client.get(f"/v1/responses/{rid}", headers=self.headers))
            assert got.status_code == 200, f"tenant {self.n}'s {rid} is gone: {got.text}"
            assert got.json()["status"] == status
        for rid in self.deleted:
            got = await self.client.get(f"/v1/responses/{rid}", headers=self.headers)
            assert got.status_code == 404


@pytest.fixture(params=["memory", "diskcache"])
async def shim(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shim]:
    store = "memory://" if request.param == "memory" else f"diskcache://{tmp_path / 'store'}"
    shim = build_shim(target=Jitter(seed=6), store=store)
    app_state(shim.app).background.poll = 0.01
    yield shim
    await shim.client.aclose()


async def test_concurrent_callers_never_reach_each_other(shim: Shim) -> None:
    registry: dict[str, int] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(shim.app), base_url="http://shim") as client:
        runner = app_state(shim.app).background
        backgrounds: list[tuple[str, int]] = []
        tenants = [
            Tenant(n, client, registry, backgrounds, lambda i: i in runner._tasks) for n in range(TENANTS)
        ]
        async with asyncio.timeout(120):
            await asyncio.gather(*(t.run() for t in tenants))
            await asyncio.gather(*(t.check_end() for t in tenants))
    assert sum(t.cross_attempts for t in tenants) >= TENANTS * ROUNDS * len(CROSS)
    assert sum(t.running_hits for t in tenants) >= TENANTS, "running background responses were attacked"
    assert len(registry) == TENANTS * ROUNDS * 3
    # Each round's three turns and its background turn (unless cancelled first); no attempt with
    # someone else's previous_response_id reached the upstream.
    assert TENANTS * ROUNDS * 3 <= len(shim.upstream.requests) <= TENANTS * ROUNDS * 4
    for request in shim.upstream.requests:  # what the model was sent: one caller's texts only
        tokens = set(TOKEN.findall(request.content.decode()))
        assert len(tokens) <= 1, f"one upstream request mixed callers: {tokens}"

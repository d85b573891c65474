"""Rate limits across two shim replicas sharing a real ``redis-server`` (skipped locally without
one, failed under CI=true): one key's requests and tokens count the same on either replica, a
burst split over both admits exactly the limit (the Lua script is atomic), and Redis holds a keyed
hash of the key, never the key itself, under keys that expire once their bucket is empty."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from shim.http.ratelimit import estimate_tokens
from shim.http.state import app_state
from shim.settings import RateLimits
from tests.store.conftest import redis_url
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim

__all__ = ["redis_url"]

KEY = "sk-shim-shared-key"
AUTH = {"authorization": f"Bearer {KEY}"}
BODY = {"model": "ok", "input": "hi"}


@pytest.fixture
def store(redis_url: str) -> str:
    return f"{redis_url}?prefix=rl{uuid.uuid4().hex[:10]}:"


async def _replicas(fault: FaultUpstream, store: str, limits: RateLimits) -> tuple[LiveShim, LiveShim]:
    # isolated_env gives both the same SHIM_SECRET, as replicas of one deployment share it
    return tuple(  # type: ignore[return-value]
        LiveShim(fault.url, store=store, api_keys=(KEY,), rate_limits=limits) for _ in range(2)
    )


@pytest.fixture
async def pair(
    fault: FaultUpstream, store: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[LiveShim, LiveShim]]:
    a, b = await _replicas(fault, store, request.param)
    yield a, b
    for shim in (a, b):
        await shim.aclose()
        store = app_state(shim.app).turns.store
        assert store is not None
        await store.backend.aclose()  # the app's shutdown would (LiveShim runs none)


@pytest.mark.parametrize("pair", [RateLimits(requests_per_minute=3)], indirect=True)
async def test_requests_count_on_either_replica(pair: tuple[LiveShim, LiveShim]) -> None:
    a, b = pair
    answers = [await shim.client.post("/v1/responses", json=BODY, headers=AUTH) for shim in (a, b, a, b)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in answers] == ["2", "1", "0", "0"]
    assert answers[3].json()["error"]["type"] == "requests"


@pytest.mark.parametrize("pair", [RateLimits(requests_per_minute=5)], indirect=True)
async def test_a_burst_over_both_replicas_admits_exactly_the_limit(pair: tuple[LiveShim, LiveShim]) -> None:
    a, b = pair
    answers = await asyncio.gather(
        *(shim.client.post("/v1/responses", json=BODY, headers=AUTH) for shim in (a, b) * 6)
    )
    assert sorted(r.status_code for r in answers) == [200] * 5 + [429] * 7


@pytest.mark.parametrize("pair", [RateLimits(tokens_per_minute=600)], indirect=True)
async def test_tokens_settled_on_one_replica_are_seen_by_the_other(
    pair: tuple[LiveShim, LiveShim], store: str
) -> None:
    a, b = pair
    estimate = estimate_tokens(json.dumps(BODY).encode())
    first = await a.client.post("/v1/responses", json=BODY, headers=AUTH)
    assert int(first.headers["x-ratelimit-remaining-tokens"]) in (600 - estimate, 601 - estimate)
    second = await b.client.post("/v1/responses", json=BODY, headers=AUTH)
    # the first turn counts 7 tokens (what the upstream reported), the second its estimate
    assert int(second.headers["x-ratelimit-remaining-tokens"]) in range(593 - estimate, 596 - estimate)
    client: Any = aioredis.Redis.from_url(store.split("?")[0])
    try:
        prefix = store.split("prefix=")[1]
        keys = [k.decode() async for k in client.scan_iter(match=f"{prefix}ratelimit:*")]
        assert keys and all(KEY not in k for k in keys)
        assert all(0 < ttl <= 60_000 for ttl in [await client.pttl(k) for k in keys])
    finally:
        await client.aclose()

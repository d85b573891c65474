"""One contract, three backends: memory, diskcache and a real redis-server behave alike.

Each row is an operation script run against an empty store; the concurrency cases check the
atomicity that background jobs rely on (exactly one winner among racing ``add`` or
``compare_and_set`` calls).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from shim.store.backends import KeyValue
from shim.store.repository import ResponseStore, StoredResponse
from shim.wire import responses as r

BLOBS = {
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "nul and utf-8": "\x00 ünïcødé \x00".encode(),
    "large (2 MiB)": os.urandom(2 * 1024 * 1024),
}


@pytest.mark.parametrize("blob", BLOBS.values(), ids=BLOBS.keys())
async def test_a_value_reads_back_byte_for_byte(backend: KeyValue, blob: bytes) -> None:
    await backend.set("resp:scope:id", blob, None)
    assert await backend.get("resp:scope:id") == blob


async def test_missing_keys_read_as_none_and_delete_reports_presence(backend: KeyValue) -> None:
    assert await backend.get("nope") is None
    assert await backend.delete("nope") is False
    await backend.set("k", b"v", 60)
    assert await backend.delete("k") is True
    assert await backend.get("k") is None
    assert await backend.delete("k") is False


async def test_set_replaces_the_whole_value(backend: KeyValue) -> None:
    await backend.set("k", b"a much longer first value", None)
    await backend.set("k", b"short", None)
    assert await backend.get("k") == b"short"


async def test_keys_are_distinct_and_may_hold_any_characters(backend: KeyValue) -> None:
    keys = ["a", "a:", "a:b", "ünï", "with space", "resp:0123:resp_x"]
    for n, key in enumerate(keys):
        await backend.set(key, str(n).encode(), None)
    assert [await backend.get(k) for k in keys] == [str(n).encode() for n in range(len(keys))]


async def test_expired_keys_read_like_missing_ones(backend: KeyValue) -> None:
    await backend.set("short", b"v", 0.2)
    await backend.set("long", b"v", 60)
    await backend.append("list", b"x", 0.2)
    assert await backend.get("short") == b"v"
    await asyncio.sleep(0.5)
    assert await backend.get("short") is None
    assert await backend.get("long") == b"v"
    assert await backend.list_range("list") == []
    assert await backend.add("short", b"again", 60) is True  # an expired key is free to claim
    assert await backend.compare_and_set("list", None, b"fresh", 60) is True


async def test_add_sets_only_when_absent(backend: KeyValue) -> None:
    assert await backend.add("job", b"first", 60) is True
    assert await backend.add("job", b"second", 60) is False
    assert await backend.get("job") == b"first"
    await backend.delete("job")
    assert await backend.add("job", b"third", None) is True
    assert await backend.get("job") == b"third"


# (expected, value) steps applied in order to one key, and whether each one wins.
CAS_SCRIPT = [
    (b"queued", b"x", False),  # missing key: nothing to compare with
    (None, b"queued", True),  # create if missing
    (None, b"again", False),  # ... only if missing
    (b"in_progress", b"completed", False),  # stale expectation
    (b"queued", b"in_progress", True),
    (b"in_progress", b"cancelled", True),
    (b"in_progress", b"completed", False),  # the cancel won
]


async def test_compare_and_set_follows_the_current_value(backend: KeyValue) -> None:
    for expected, value, wins in CAS_SCRIPT:
        assert await backend.compare_and_set("status", expected, value, 60) is wins, (expected, value)
    assert await backend.get("status") == b"cancelled"


async def test_racing_adds_have_exactly_one_winner(backend: KeyValue) -> None:
    results = await asyncio.gather(*(backend.add("claim", str(n).encode(), 60) for n in range(20)))
    assert results.count(True) == 1
    assert await backend.get("claim") == str(results.index(True)).encode()


async def test_racing_compare_and_sets_have_exactly_one_winner(backend: KeyValue) -> None:
    await backend.set("status", b"in_progress", 60)
    moves = [b"completed", b"cancelled", b"failed"] * 5
    results = await asyncio.gather(*(backend.compare_and_set("status", b"in_progress", m, 60) for m in moves))
    assert results.count(True) == 1
    assert await backend.get("status") == moves[results.index(True)]


async def test_append_builds_a_list_read_by_slices(backend: KeyValue) -> None:
    assert await backend.list_range("events") == []
    lengths = [await backend.append("events", f"e{n}".encode(), 60) for n in range(5)]
    assert lengths == [1, 2, 3, 4, 5]
    assert await backend.list_range("events") == [b"e0", b"e1", b"e2", b"e3", b"e4"]
    assert await backend.list_range("events", 2) == [b"e2", b"e3", b"e4"]
    assert await backend.list_range("events", 1, 3) == [b"e1", b"e2"]
    assert await backend.list_range("events", 3, 3) == []
    assert await backend.list_range("events", 7) == []
    assert await backend.get("events") is None  # a list is not a value
    assert await backend.delete("events") is True
    assert await backend.list_range("events") == []


async def test_racing_appends_lose_nothing(backend: KeyValue) -> None:
    lengths = await asyncio.gather(*(backend.append("log", str(n).encode(), 60) for n in range(30)))
    assert sorted(lengths) == list(range(1, 31))
    assert sorted(int(v) for v in await backend.list_range("log")) == list(range(30))


async def test_ping(backend: KeyValue) -> None:
    assert await backend.ping() is True


def _stored(response_id: str, depth: int) -> StoredResponse:
    items: list[r.ItemParam] = [
        r.MessageItemParam(role="user" if n % 2 == 0 else "assistant", content=f"turn {n}: " + "words " * 40)
        for n in range(depth)
    ]
    resource = r.ResponseResource(
        id=response_id,
        created_at=1700000000,
        model="m",
        status="completed",
        output=[],
    )
    return StoredResponse(resource=resource, input_items=items[-1:], history=items, scope="s")


async def test_the_response_repository_round_trips_over_the_backend(backend: KeyValue) -> None:
    store = ResponseStore(backend, ttl=60)
    record = _stored("resp_contract", depth=200)
    await store.save("scope-a", record)
    assert await store.load("scope-a", "resp_contract") == record
    assert await store.load("scope-b", "resp_contract") is None  # another caller's id is missing
    assert await store.delete("scope-a", "resp_contract") is True
    assert await store.load("scope-a", "resp_contract") is None

"""Conversations on every store backend (memory, diskcache, a real ``redis-server``): the API
through the openai SDK, restarts, TTL, and concurrent turns on one conversation through two app
instances sharing the store, which must neither lose nor interleave items."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shim.conversation.conversation_items import append_items
from shim.http.state import app_state
from shim.ids import RandomIds
from shim.store.backends import KeyValue, open_backend
from shim.store.conversations import ConversationStore, StoredConversation
from shim.wire import responses as r
from tests.server.harness import Shim, build_shim, slow_app, text_of
from tests.server.openai_sdk import openai_sdk


def _message(text: str) -> r.MessageItemParam:
    return r.MessageItemParam(role="user", content=[r.InputTextContent(text=text)])


def _text(item: r.ItemParam) -> str:
    assert isinstance(item, r.MessageItemParam) and isinstance(item.content, list)
    part = item.content[0]
    assert isinstance(part, r.InputTextContent | r.OutputTextContent)
    return part.text


@pytest.fixture
async def two_stores(backend_url: str) -> AsyncIterator[tuple[ConversationStore, ConversationStore]]:
    """Two stores over one URL, each with its own client, as two replicas would have (memory
    cannot be shared that way: both get one instance)."""
    first = open_backend(backend_url)
    second = first if backend_url == "memory://" else open_backend(backend_url)
    yield ConversationStore(first, ttl=60), ConversationStore(second, ttl=60)
    for kv in {id(k): k for k in (first, second)}.values():
        await kv.aclose()


async def test_concurrent_appends_keep_every_block_whole(
    two_stores: tuple[ConversationStore, ConversationStore],
) -> None:
    a, b = two_stores
    await a.create("s", StoredConversation(id="conv_1", created_at=1))
    ids = RandomIds()
    blocks = [[_message(f"{n}.{k}") for k in range(3)] for n in range(40)]
    results = await asyncio.gather(
        *(append_items((a, b)[n % 2], "s", "conv_1", block, ids) for n, block in enumerate(blocks))
    )
    assert all(result is not None for result in results)
    final = await b.load("s", "conv_1")
    assert final is not None
    texts = [_text(item) for item in final.items]
    assert len(texts) == 120, "an append was lost"
    for start in range(0, 120, 3):  # each block of three is together and in order
        turn = texts[start].split(".")[0]
        assert texts[start : start + 3] == [f"{turn}.0", f"{turn}.1", f"{turn}.2"]
    assert len({item.id for item in final.items}) == 120


async def test_ttl_expires_and_writes_renew(backend: KeyValue) -> None:
    store = ConversationStore(backend, ttl=0.6)
    await store.create("s", StoredConversation(id="conv_t", created_at=1))
    await asyncio.sleep(0.4)
    assert await append_items(store, "s", "conv_t", [_message("keep me")], RandomIds()) is not None
    await asyncio.sleep(0.4)  # past the first write's expiry, not the append's
    assert await store.load("s", "conv_t") is not None
    await asyncio.sleep(0.6)
    assert await store.load("s", "conv_t") is None
    assert await append_items(store, "s", "conv_t", [_message("late")], RandomIds()) is None


async def test_sdk_on_every_backend(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openai")
    pytest.importorskip("httpx2")
    monkeypatch.setenv(
        "SHIM_SECRET", "shared-secret-of-the-two-replicas-0123"
    )  # the scope key must outlive the app
    shim = build_shim(store=backend_url)
    async with openai_sdk(shim) as sdk:
        conv = await sdk.conversations.create(
            items=[{"role": "user", "content": "hello"}], metadata={"a": "b"}
        )
        answer = await sdk.responses.create(model="m", input="more", conversation=conv.id)
        assert answer.conversation.id == conv.id
        listed = (await sdk.conversations.items.list(conv.id, order="asc")).data
        assert [i.role for i in listed] == ["user", "user", "assistant"]
    await app_state(shim.app).turns.store.backend.aclose()  # type: ignore[union-attr]
    if backend_url == "memory://":
        return
    restarted = build_shim(store=backend_url)  # a new process on the same store
    async with openai_sdk(restarted) as sdk:
        again = await sdk.conversations.retrieve(conv.id)
        assert again.metadata == {"a": "b"}
        listed_again = (await sdk.conversations.items.list(conv.id, order="asc")).data
        assert [i.id for i in listed_again] == [i.id for i in listed]
    await app_state(restarted.app).turns.store.backend.aclose()  # type: ignore[union-attr]


@pytest.fixture
async def replicas(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[Shim]]:
    """Two app instances over one store URL, each with its own backend client; a slow upstream,
    so their turns overlap."""
    monkeypatch.setenv("SHIM_SECRET", "shared-secret-of-the-two-replicas-0123")
    shims = [build_shim(target=slow_app(0.05), store=backend_url) for _ in range(2)]
    if backend_url == "memory://":  # one process's memory: share the instance
        ctx_a, ctx_b = (app_state(s.app).turns for s in shims)
        ctx_b.store, ctx_b.conversations = ctx_a.store, ctx_a.conversations
    yield shims
    for shim in shims:
        await shim.client.aclose()
        store = app_state(shim.app).turns.store
        if store is not None:
            await store.backend.aclose()


async def test_concurrent_turns_through_two_replicas(replicas: list[Shim]) -> None:
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(s.app), base_url="http://shim") for s in replicas
    ]
    try:
        conv = (await clients[0].post("/v1/conversations", json={})).json()["id"]

        async def turn(n: int) -> dict[str, Any]:
            body: dict[str, Any] = {"model": "m", "input": f"turn {n}", "conversation": conv}
            if n % 3 == 0:
                body["stream"] = True
            answer = await clients[n % 2].post("/v1/responses", json=body)
            assert answer.status_code == 200, answer.text
            return {"n": n}

        await asyncio.gather(*(turn(n) for n in range(12)))
        listed = (await clients[1].get(f"/v1/conversations/{conv}/items?order=asc&limit=100")).json()["data"]
    finally:
        for client in clients:
            await client.aclose()
    assert len(listed) == 24, "a turn's items were lost"
    inputs = []
    for k in range(0, 24, 2):  # every turn's input is followed by its own answer
        user, assistant = listed[k], listed[k + 1]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        inputs.append(text_of({"content": [{"type": "text", "text": user["content"][0]["text"]}]}))
    assert sorted(inputs) == sorted(f"turn {n}" for n in range(12))
    assert len({item["id"] for item in listed}) == 24

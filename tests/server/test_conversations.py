"""The Conversations API through openai-python's ``client.conversations``, and ``conversation``
on ``POST /v1/responses`` over HTTP JSON, SSE, background and WebSocket, on Chat and Open Responses
routes (in-process, memory store; every backend, concurrency and restarts: tests/store/test_conversations_store.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from shim.conversation.sealing import PREFIX
from shim.http.state import app_state
from shim.settings import Route
from tests.server.harness import UPSTREAM_URL, Shim, parse_sse, reasoning_app, status_app, text_of
from tests.server.test_background import poll, settle
from tests.server.test_websocket import completed, turn
from tests.support.scripted_responses import ScriptedResponses

openai = pytest.importorskip("openai")
pytest.importorskip("httpx2")

ALICE = {"authorization": "Bearer sk-alice"}
MALLORY = {"authorization": "Bearer sk-mallory"}


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [text_of(m) for m in messages]


def item_texts(items: list[Any]) -> list[str]:
    return [item.content[0].text for item in items]


async def test_sdk_lifecycle(sdk: Any) -> None:
    conv = await sdk.conversations.create(
        items=[{"type": "message", "role": "user", "content": "first"}], metadata={"topic": "demo"}
    )
    assert conv.object == "conversation" and conv.id.startswith("conv_")
    assert conv.metadata == {"topic": "demo"}
    assert (await sdk.conversations.retrieve(conv.id)) == conv

    updated = await sdk.conversations.update(conv.id, metadata={"topic": "other"})
    assert updated.metadata == {"topic": "other"} and updated.id == conv.id

    added = await sdk.conversations.items.create(
        conv.id,
        items=[
            {"role": "user", "content": "second"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "third"}]},
        ],
    )
    assert added.object == "list" and item_texts(added.data) == ["second", "third"]
    assert added.first_id == added.data[0].id and added.last_id == added.data[-1].id and not added.has_more

    newest_first = await sdk.conversations.items.list(conv.id)
    assert item_texts(newest_first.data) == ["third", "second", "first"]
    page = await sdk.conversations.items.list(conv.id, order="asc", limit=2)
    assert item_texts(page.data) == ["first", "second"] and page.has_more
    rest = await sdk.conversations.items.list(conv.id, order="asc", after=page.last_id)
    assert item_texts(rest.data) == ["third"] and not rest.has_more
    every = [item async for item in sdk.conversations.items.list(conv.id, order="asc", limit=1)]
    assert item_texts(every) == ["first", "second", "third"]  # the SDK's auto-pagination

    one = await sdk.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    assert one.id == added.data[0].id and one.type == "message" and one.role == "user"
    assert one.status == "completed"

    after_delete = await sdk.conversations.items.delete(added.data[0].id, conversation_id=conv.id)
    assert after_delete.id == conv.id
    assert item_texts((await sdk.conversations.items.list(conv.id, order="asc")).data) == ["first", "third"]
    with pytest.raises(openai.NotFoundError):
        await sdk.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)

    deleted = await sdk.conversations.delete(conv.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (conv.id, True, "conversation.deleted")
    for call in (
        sdk.conversations.retrieve(conv.id),
        sdk.conversations.items.list(conv.id),
        sdk.conversations.delete(conv.id),
    ):
        with pytest.raises(openai.NotFoundError):
            await call


async def test_responses_continue_the_conversation(sdk: Any, shim: Shim) -> None:
    conv = await sdk.conversations.create(items=[{"role": "user", "content": "My name is Ada."}])
    first = await sdk.responses.create(model="m", input="What is my name?", conversation=conv.id)
    assert first.conversation.id == conv.id
    assert texts(shim.upstream.bodies[-1]["messages"]) == ["My name is Ada.", "What is my name?"]

    second = await sdk.responses.create(model="m", input="Again?", conversation={"id": conv.id})
    assert second.conversation.id == conv.id
    sent = texts(shim.upstream.bodies[-1]["messages"])
    assert sent == ["My name is Ada.", "What is my name?", first.output_text, "Again?"]

    items = (await sdk.conversations.items.list(conv.id, order="asc")).data
    assert [i.role for i in items] == ["user", "user", "assistant", "user", "assistant"]
    assert items[2].id == first.output[0].id  # output items keep their ids
    assert (await sdk.responses.retrieve(second.id)).conversation.id == conv.id


async def test_streamed_turn_appends(client: httpx.AsyncClient, shim: Shim) -> None:
    conv = (await client.post("/v1/conversations", json={})).json()
    answer = await client.post(
        "/v1/responses", json={"model": "m", "input": "hi", "conversation": conv["id"], "stream": True}
    )
    events, _ = parse_sse(answer.text)
    assert events[-1][0] == "response.completed"
    assert b'"conversation":{"id":"' + conv["id"].encode() in events[-1][1]
    listed = (await client.get(f"/v1/conversations/{conv['id']}/items?order=asc")).json()["data"]
    assert [i["role"] for i in listed] == ["user", "assistant"]


async def test_background_turn_appends(client: httpx.AsyncClient, shim: Shim) -> None:
    conv = (await client.post("/v1/conversations", json={})).json()
    queued = await client.post(
        "/v1/responses", json={"model": "m", "input": "later", "conversation": conv["id"], "background": True}
    )
    assert queued.json()["conversation"] == {"id": conv["id"]}
    done = await poll(client, queued.json()["id"])
    await settle(app_state(shim.app).background)
    assert done["status"] == "completed" and done["conversation"] == {"id": conv["id"]}
    listed = (await client.get(f"/v1/conversations/{conv['id']}/items?order=asc")).json()["data"]
    assert [i["role"] for i in listed] == ["user", "assistant"]
    assert listed[0]["content"][0]["text"] == "later"


@pytest.fixture
def http(shim: Shim) -> Iterator[TestClient[Any]]:
    with TestClient(app=shim.app) as client:
        yield client


def test_websocket_turns_share_the_conversation(http: TestClient[Any], shim: Shim) -> None:
    conv = http.post("/v1/conversations", json={"items": [{"role": "user", "content": "zero"}]}).json()
    with http.websocket_connect("/v1/responses") as ws:
        first = completed(turn(ws, {"model": "m", "input": "one", "conversation": conv["id"]}))
        second = completed(turn(ws, {"model": "m", "input": "two", "conversation": conv["id"]}))
    assert first["conversation"] == second["conversation"] == {"id": conv["id"]}
    sent = texts(shim.upstream.bodies[-1]["messages"])  # zero, one, the first answer, two
    assert [sent[0], sent[1], sent[3]] == ["zero", "one", "two"] and len(sent) == 4
    listed = http.get(f"/v1/conversations/{conv['id']}/items?order=asc").json()["data"]
    assert len(listed) == 5


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"conversation": "conv_nope"}, 404, "conversation_not_found", "conversation"),
        ({"conversation": {"id": "conv_nope", "x": 1}}, 400, "invalid_type", "conversation"),
        ({"conversation": 7}, 400, "invalid_type", "conversation"),
        (
            {"conversation": "CONV", "previous_response_id": "resp_1"},
            400,
            "invalid_parameter",
            "conversation",
        ),
    ],
)
async def test_bad_conversation_parameters(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    if body.get("conversation") == "CONV":
        body["conversation"] = (await client.post("/v1/conversations", json={})).json()["id"]
    answer = await client.post("/v1/responses", json={"model": "m", "input": "x", **body})
    assert answer.status_code == status, answer.text
    assert (answer.json()["error"]["code"], answer.json()["error"]["param"]) == (code, param)


async def test_another_caller_sees_a_missing_conversation(client: httpx.AsyncClient) -> None:
    conv = (await client.post("/v1/conversations", json={}, headers=ALICE)).json()
    for method, path in [
        ("GET", f"/v1/conversations/{conv['id']}"),
        ("DELETE", f"/v1/conversations/{conv['id']}"),
        ("GET", f"/v1/conversations/{conv['id']}/items"),
    ]:
        answer = await client.request(method, path, headers=MALLORY)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    answer = await client.post(
        "/v1/responses", json={"model": "m", "input": "x", "conversation": conv["id"]}, headers=MALLORY
    )
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "conversation_not_found"
    assert (await client.get(f"/v1/conversations/{conv['id']}", headers=ALICE)).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "code", "param"),
    [
        ("/v1/conversations", {"itemz": []}, "unsupported_parameter", "itemz"),
        ("/v1/conversations", {"items": [{"role": "user"}]}, "invalid_value", "items[0].content"),
        ("/v1/conversations", {"items": [{"role": "user", "content": "x"}] * 21}, "too_many_items", "items"),
        ("/v1/conversations", {"metadata": {str(n): "v" for n in range(17)}}, "too_many_items", "metadata"),
        (
            "/v1/conversations",
            {"items": [{"type": "item_reference", "id": "msg_x"}]},
            "not_found",
            "items[0].id",
        ),
    ],
)
async def test_bad_bodies(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], code: str, param: str
) -> None:
    answer = await client.post(path, json=body)
    assert answer.status_code == 400, answer.text
    assert (answer.json()["error"]["code"], answer.json()["error"]["param"]) == (code, param)


async def test_include_controls_sealed_reasoning(
    make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = make_shim(target=reasoning_app(["Let me think."], ["Done."]))
    client = connect(shim)
    conv = (await client.post("/v1/conversations", json={})).json()
    body = {
        "model": "m",
        "input": "x",
        "conversation": conv["id"],
        "include": ["reasoning.encrypted_content"],
    }
    assert (await client.post("/v1/responses", json=body)).status_code == 200
    url = f"/v1/conversations/{conv['id']}/items"
    plain = (await client.get(url, params={"order": "asc"})).json()["data"]
    assert [i["type"] for i in plain] == ["message", "reasoning", "message"]
    assert "encrypted_content" not in plain[1]
    shown = (
        await client.get(url, params={"order": "asc", "include": ["reasoning.encrypted_content"]})
    ).json()
    sealed = shown["data"][1]["encrypted_content"]
    assert sealed.startswith(PREFIX)
    # The next turn opens the sealed item (one that does not open is a 400).
    assert (await client.post("/v1/responses", json=body)).status_code == 200
    assert len((await client.get(url, params={"limit": 100})).json()["data"]) == 6
    bad = await client.get(url, params={"include": ["nothing.real"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "include[0]"


async def test_items_that_cannot_be_opened_are_refused_when_added(client: httpx.AsyncClient) -> None:
    item = {"type": "reasoning", "summary": [], "encrypted_content": "not-sealed-by-us"}
    answer = await client.post("/v1/conversations", json={"items": [{"role": "user", "content": "x"}, item]})
    assert answer.status_code == 400, answer.text
    assert (answer.json()["error"]["code"], answer.json()["error"]["param"]) == (
        "invalid_encrypted_content",
        "items[1].encrypted_content",
    )


async def test_failed_turn_leaves_the_conversation_alone(
    make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = make_shim(target=status_app(500, {"error": {"message": "boom"}}))
    client = connect(shim)
    conv = (await client.post("/v1/conversations", json={})).json()
    answer = await client.post("/v1/responses", json={"model": "m", "input": "x", "conversation": conv["id"]})
    assert answer.status_code >= 500
    assert (await client.get(f"/v1/conversations/{conv['id']}/items")).json()["data"] == []


async def test_storeless_server_refuses(
    make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    client = connect(make_shim(store="none"))
    answer = await client.post("/v1/conversations", json={})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "unsupported_parameter"
    missing = await client.post("/v1/responses", json={"model": "m", "input": "x", "conversation": "conv_1"})
    assert missing.status_code == 404


async def test_store_false_still_appends_to_the_conversation(client: httpx.AsyncClient) -> None:
    """The conversation is the client's chosen state: `store: false` keeps only the response
    record out of the store."""
    conv = (await client.post("/v1/conversations", json={})).json()
    body = {"model": "m", "input": "off the record", "conversation": conv["id"], "store": False}
    answer = (await client.post("/v1/responses", json=body)).json()
    assert answer["conversation"] == {"id": conv["id"]} and answer["store"] is False
    assert (await client.get(f"/v1/responses/{answer['id']}")).status_code == 404
    listed = (await client.get(f"/v1/conversations/{conv['id']}/items")).json()["data"]
    assert [i["role"] for i in listed] == ["assistant", "user"]


# ------------------------------------------------------------------------- Open Responses routes


@pytest.mark.parametrize("stream", [False, True])
async def test_stateless_responses_upstream_continues_the_conversation(
    make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient], stream: bool
) -> None:
    """Over an upstream that keeps no state (and rejects `previous_response_id`, like Ollama's)
    the shim expands the conversation, appends the turn, and every response in the answer's
    bytes names the conversation."""
    upstream = ScriptedResponses(reject_previous_id=True)
    client = connect(make_shim(target=upstream, routes=(Route(upstream=UPSTREAM_URL, kind="responses"),)))
    conv = (
        await client.post("/v1/conversations", json={"items": [{"role": "user", "content": "zero"}]})
    ).json()

    async def turn(text: str) -> dict[str, Any]:
        body = {"model": "m", "input": text, "conversation": conv["id"], "stream": stream}
        answer = await client.post("/v1/responses", json=body)
        assert answer.status_code == 200, answer.text
        if not stream:
            return dict(answer.json())
        events, _ = parse_sse(answer.text)
        decoded = [json.loads(data) for _, data in events]
        carrying = [e["response"] for e in decoded if "response" in e]
        assert len(carrying) >= 2 and all(r["conversation"] == {"id": conv["id"]} for r in carrying)
        assert [e["sequence_number"] for e in decoded] == list(range(len(decoded)))  # re-written whole
        return dict(carrying[-1])

    first = await turn("one")
    second = await turn("two")
    assert first["conversation"] == second["conversation"] == {"id": conv["id"]}
    sent = upstream.requests[-1]
    assert "conversation" not in sent and "previous_response_id" not in sent
    assert [i.get("role") for i in sent["input"]] == ["user", "user", "assistant", "user"]
    listed = (await client.get(f"/v1/conversations/{conv['id']}/items?order=asc")).json()["data"]
    assert [i["role"] for i in listed] == ["user", "user", "assistant", "user", "assistant"]
    assert listed[2]["id"] == first["output"][0]["id"]
    stored = (await client.get(f"/v1/responses/{second['id']}")).json()
    assert stored["conversation"] == {"id": conv["id"]}


async def test_stateful_responses_upstream_gets_conversation_as_sent(
    make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    upstream = ScriptedResponses(stateful=True)
    route = Route(upstream=UPSTREAM_URL, kind="responses", stateful=True)
    client = connect(make_shim(target=upstream, routes=(route,)))
    body = {"model": "m", "input": "hi", "conversation": {"id": "conv_at_the_upstream"}}
    assert (await client.post("/v1/responses", json=body)).status_code == 200
    assert upstream.requests[-1] == body  # the upstream keeps its own conversations

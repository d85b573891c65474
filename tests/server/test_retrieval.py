"""Stored responses: ``GET``/``DELETE /v1/responses/{id}``, ``GET .../input_items`` and the store's
promises (one read per turn, instructions not inherited, streams stored only when finished)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.http.paging import page_items
from shim.http.retrieval import listed_items
from shim.http.state import app_state
from shim.store.repository import StoredResponse
from shim.wire import responses as r
from tests.checks.oracle import validate_resource
from tests.server.harness import Shim, asgi_post, broken_stream, parse_sse, stalling_stream, text_of

Connect = Callable[[Shim], httpx.AsyncClient]
MakeShim = Callable[..., Shim]


async def create(client: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """One turn; the final resource, over JSON or SSE."""
    response = await client.post("/v1/responses", json={"model": "m", **body}, **kwargs)
    assert response.status_code == 200, response.text
    if not body.get("stream"):
        data: dict[str, Any] = response.json()
        return data
    pairs, _ = parse_sse(response.text)
    final: dict[str, Any] = json.loads(pairs[-1][1])["response"]
    return final


def not_found(response: httpx.Response, code: str = "not_found") -> dict[str, Any]:
    assert response.status_code == 404, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["type"] == "invalid_request_error"
    return error


class CountingBackend:
    """Wraps a backend and counts the calls a request makes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await method(*args, **kwargs)

        return counted


# --------------------------------------------------------------------------- GET / DELETE


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_get_returns_the_stored_resource(client: httpx.AsyncClient, stream: bool) -> None:
    created = await create(client, {"input": "Hello", "stream": stream, "metadata": {"k": "v"}})
    response = await client.get(f"/v1/responses/{created['id']}")
    assert response.status_code == 200
    validate_resource(response.content)
    assert response.json() == created


async def test_delete(client: httpx.AsyncClient) -> None:
    created = await create(client, {"input": "Hello"})
    response = await client.delete(f"/v1/responses/{created['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": created["id"], "object": "response.deleted", "deleted": True}
    not_found(await client.get(f"/v1/responses/{created['id']}"))
    not_found(await client.get(f"/v1/responses/{created['id']}/input_items"))
    not_found(await client.delete(f"/v1/responses/{created['id']}"))
    follow = await client.post(
        "/v1/responses", json={"model": "m", "input": "again", "previous_response_id": created["id"]}
    )
    not_found(follow, "previous_response_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/responses/resp_missing"),
        ("DELETE", "/v1/responses/resp_missing"),
        ("GET", "/v1/responses/resp_missing/input_items"),
        ("POST", "/v1/responses/resp_missing/cancel"),
    ],
)
async def test_unknown_id_is_404_in_the_envelope(client: httpx.AsyncClient, method: str, path: str) -> None:
    error = not_found(await client.request(method, path))
    assert error == {
        "message": "Response with id 'resp_missing' not found.",
        "type": "invalid_request_error",
        "param": "response_id",
        "code": "not_found",
    }


async def test_get_does_not_replay_streams(client: httpx.AsyncClient) -> None:
    created = await create(client, {"input": "Hello"})
    response = await client.get(f"/v1/responses/{created['id']}", params={"stream": "true"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"
    assert (await client.get(f"/v1/responses/{created['id']}", params={"stream": "false"})).status_code == 200


async def test_store_false_is_not_retrievable(client: httpx.AsyncClient) -> None:
    created = await create(client, {"input": "Hello", "store": False})
    not_found(await client.get(f"/v1/responses/{created['id']}"))


async def test_without_a_store_every_id_is_missing(make_shim: MakeShim, connect: Connect) -> None:
    shim = make_shim()
    app_state(shim.app).turns.store = None
    client = connect(shim)
    created = await create(client, {"input": "Hello"})
    not_found(await client.get(f"/v1/responses/{created['id']}"))
    not_found(await client.delete(f"/v1/responses/{created['id']}"))


async def test_retrieval_checks_shim_keys(make_shim: MakeShim, connect: Connect) -> None:
    client = connect(make_shim(api_keys=("sk-shim",)))
    created = await create(client, {"input": "Hello"}, headers={"authorization": "Bearer sk-shim"})
    for key in (None, "sk-other"):
        headers = {"authorization": f"Bearer {key}"} if key else {}
        response = await client.get(f"/v1/responses/{created['id']}", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


# --------------------------------------------------------------------------- input_items

FIVE = [{"role": "user", "content": f"message {n}"} for n in range(5)]


def texts(page: dict[str, Any]) -> list[str]:
    return [item["content"][0]["text"] for item in page["data"]]


@pytest.mark.parametrize(
    ("query", "expected", "has_more"),
    [
        ({}, [4, 3, 2, 1, 0], False),
        ({"order": "asc"}, [0, 1, 2, 3, 4], False),
        ({"limit": 2}, [4, 3], True),
        ({"limit": 2, "order": "asc"}, [0, 1], True),
        ({"limit": 5}, [4, 3, 2, 1, 0], False),
        ({"limit": 100}, [4, 3, 2, 1, 0], False),
        ({"limit": 1, "order": "asc", "after": 3}, [4], False),
        ({"limit": 2, "after": 3}, [2, 1], True),
        ({"after": 0}, [], False),
    ],
)
async def test_input_items_pagination(
    client: httpx.AsyncClient, query: dict[str, Any], expected: list[int], has_more: bool
) -> None:
    created = await create(client, {"input": FIVE})
    url = f"/v1/responses/{created['id']}/input_items"
    everything = (await client.get(url, params={"order": "asc"})).json()
    ids = [item["id"] for item in everything["data"]]
    if "after" in query:
        query = {**query, "after": ids[query["after"]]}
    response = await client.get(url, params=query)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"object", "data", "first_id", "last_id", "has_more"}
    assert page["object"] == "list"
    assert texts(page) == [f"message {n}" for n in expected]
    assert page["has_more"] is has_more
    assert page["first_id"] == (ids[expected[0]] if expected else None)
    assert page["last_id"] == (ids[expected[-1]] if expected else None)


async def test_cursor_walk_visits_every_item_once(client: httpx.AsyncClient) -> None:
    created = await create(client, {"input": FIVE})
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        page = (await client.get(f"/v1/responses/{created['id']}/input_items", params=params)).json()
        seen += texts(page)
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == [f"message {n}" for n in (4, 3, 2, 1, 0)]


async def test_input_items_default_page_is_20(client: httpx.AsyncClient) -> None:
    inputs = [{"role": "user", "content": f"message {n}"} for n in range(25)]
    created = await create(client, {"input": inputs})
    page = (await client.get(f"/v1/responses/{created['id']}/input_items")).json()
    assert texts(page) == [f"message {n}" for n in range(24, 4, -1)]
    assert page["has_more"] is True


async def test_input_items_shape_and_scope(client: httpx.AsyncClient) -> None:
    first = await create(client, {"input": "first question", "instructions": "Be terse."})
    second = await create(client, {"input": "second question", "previous_response_id": first["id"]})
    url = f"/v1/responses/{second['id']}/input_items"
    page = (await client.get(url)).json()
    (item,) = page["data"]  # this turn's input only, not the history it continued
    assert item["id"].startswith("msg_")
    assert {k: v for k, v in item.items() if k != "id"} == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "second question"}],
        "status": "completed",
    }
    assert (await client.get(url)).json() == page, "ids are stable between reads"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"after": "msg_unknown"}, "after"),
    ],
)
async def test_input_items_bad_query(client: httpx.AsyncClient, query: dict[str, Any], param: str) -> None:
    created = await create(client, {"input": "Hello"})
    response = await client.get(f"/v1/responses/{created['id']}/input_items", params=query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "many"}, "Invalid `limit`: Expected `int`, got `str`."),
        ({"order": "sideways"}, "Invalid `order`: Invalid enum value 'sideways'."),
    ],
    ids=["limit-nan", "order"],
)
async def test_input_items_malformed_query(
    client: httpx.AsyncClient, query: dict[str, Any], message: str
) -> None:
    created = await create(client, {"input": "Hello"})
    response = await client.get(f"/v1/responses/{created['id']}/input_items", params=query)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": message,
        "type": "invalid_request_error",
        "param": next(iter(query)),
        "code": "invalid_parameter",
    }


def test_listed_items_keeps_client_ids_and_fills_the_rest() -> None:
    resource = r.ResponseResource(id="resp_1", created_at=0, model="m")
    stored = StoredResponse(
        resource=resource,
        input_items=[
            r.MessageItemParam(role="assistant", content="earlier", id="msg_client"),
            r.FunctionCallOutputItemParam(call_id="call_1", output="Sunny"),
        ],
        history=[],
    )
    items = listed_items(stored)
    assert items[0]["id"] == "msg_client"
    assert items[0]["content"] == [{"type": "output_text", "text": "earlier"}]
    assert items[1]["id"].startswith("fco_") and items[1]["call_id"] == "call_1"
    page = page_items(items, after="msg_client", limit=20, order="desc", what="input item", where="here")
    assert page["data"] == [] and page["has_more"] is False


# --------------------------------------------------------------------------- store promises


@pytest.mark.parametrize("depth", [1, 5, 20])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_one_store_read_per_turn_whatever_the_depth(
    client: httpx.AsyncClient, shim: Shim, depth: int, stream: bool
) -> None:
    store = app_state(shim.app).turns.store
    previous: str | None = None
    for n in range(depth):
        body = {"input": f"turn {n}", **({"previous_response_id": previous} if previous else {})}
        previous = (await create(client, body))["id"]
    counter = CountingBackend(store.backend)
    store.backend = counter
    last = await create(client, {"input": "last", "previous_response_id": previous, "stream": stream})
    assert counter.calls == ["get", "set"], "one read of the chain, one write of the new record"
    messages = shim.upstream.bodies[-1]["messages"]
    assert len(messages) == 2 * depth + 1, "the whole chain reached the upstream"
    assert (await client.get(f"/v1/responses/{last['id']}")).status_code == 200


async def test_instructions_are_not_inherited_along_a_chain(client: httpx.AsyncClient, shim: Shim) -> None:
    first = await create(client, {"input": "one", "instructions": "Be terse."})
    second = await create(
        client, {"input": "two", "previous_response_id": first["id"], "instructions": "Be verbose."}
    )
    third = await create(client, {"input": "three", "previous_response_id": second["id"]})
    assert third["instructions"] is None
    systems = [
        [text_of(m) for m in b["messages"] if m["role"] in ("system", "developer")]
        for b in shim.upstream.bodies
    ]
    assert systems == [["Be terse."], ["Be verbose."], []]
    assert [m["role"] for m in shim.upstream.bodies[-1]["messages"]] == ["user", "assistant"] * 2 + ["user"]


@pytest.mark.parametrize(
    ("target", "body", "status"),
    [
        (None, {}, "completed"),
        (None, {"max_output_tokens": 3}, "incomplete"),
        (broken_stream(keep=3), {}, "failed"),
    ],
    ids=["completed", "incomplete", "failed"],
)
async def test_a_finished_stream_is_stored(
    make_shim: MakeShim, connect: Connect, target: Any, body: dict[str, Any], status: str
) -> None:
    shim = make_shim(**({"target": target} if target else {}))
    client = connect(shim)
    final = await create(client, {"input": "Hello", "stream": True, **body})
    assert final["status"] == status
    response = await client.get(f"/v1/responses/{final['id']}")
    assert response.status_code == 200
    assert response.json() == final


async def test_a_stream_the_client_left_is_not_stored(make_shim: MakeShim, connect: Connect) -> None:
    shim = make_shim(target=stalling_stream(pause=5.0, at=2))
    payload = json.dumps({"model": "m", "input": "hi", "stream": True}).encode()
    async with asyncio.timeout(2.0):
        chunks = await asgi_post(shim.app, "/v1/responses", payload, hang_up_after_first_chunk=True)
    pairs, _ = parse_sse(b"".join(chunks).decode())
    created = json.loads(pairs[0][1])["response"]
    not_found(await connect(shim).get(f"/v1/responses/{created['id']}"))


# --------------------------------------------------------------------------- the OpenAPI document

DOCUMENTED = [
    ("get", "/v1/responses/{response_id}", ["response_id", "stream"], "ResponseResource"),
    ("delete", "/v1/responses/{response_id}", ["response_id"], "DeletedResponse"),
    (
        "get",
        "/v1/responses/{response_id}/input_items",
        ["response_id", "after", "limit", "order"],
        "InputItemList",
    ),
    ("post", "/v1/responses/{response_id}/cancel", ["response_id"], "ResponseResource"),
]


@pytest.mark.parametrize(("method", "path", "params", "answer"), DOCUMENTED)
async def test_openapi_describes_the_endpoints(
    client: httpx.AsyncClient, method: str, path: str, params: list[str], answer: str
) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    operation = document["paths"][path][method]
    assert [p["name"] for p in operation["parameters"]] == params
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok == f"#/components/schemas/{answer}"
    assert answer in document["components"]["schemas"]
    for status in ("400", "401", "404"):
        error = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert error == "#/components/schemas/ErrorEnvelope"
    if answer in ("DeletedResponse", "InputItemList"):
        schema = document["components"]["schemas"][answer]
        assert set(schema["required"]) == set(schema["properties"]), "every field is always sent"


async def test_a_stream_is_stored_before_its_final_event_goes_out(shim: Shim) -> None:
    """A client may continue the chain the moment it reads ``response.completed``."""
    store = app_state(shim.app).turns.store
    scope = app_state(shim.app).turns.scope(None)
    found: list[bool] = []
    payload = json.dumps({"model": "m", "input": "hi", "stream": True}).encode()

    sent_request = False
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        body = message.get("body", b"")
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()
        if b"event: response.completed" in body:
            data = body.split(b"event: response.completed\ndata: ", 1)[1].split(b"\n", 1)[0]
            response_id = json.loads(data)["response"]["id"]
            found.append(await store.load(scope, response_id) is not None)

    scope_ = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/responses",
        "raw_path": b"/v1/responses",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"shim")],
        "client": ("127.0.0.1", 1),
        "server": ("shim", 80),
    }
    await shim.app(scope_, receive, send)  # type: ignore[arg-type]
    assert found == [True]

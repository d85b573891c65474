"""Issue 12's security findings, each over HTTP against a recording upstream.

- remembered reasoning is bound to the whole history before the assistant turn, not its text;
- credentials: which ``Authorization`` each upstream receives, for every endpoint and route
  configuration; with ``api_keys`` set every ``/v1`` endpoint wants a shim key;
- a bearer token that is not printable ASCII is a 401 in the error envelope, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from shim.settings import Route
from tests.server.harness import UPSTREAM_URL, Shim
from tests.server.test_chat_over_responses import chunks_of, content_of
from tests.support.scripted_responses import ScriptedResponses

Connect = Callable[[Shim], httpx.AsyncClient]
MakeShim = Callable[..., Shim]


def _responses_shim(make_shim: MakeShim, upstream: ScriptedResponses) -> Shim:
    return make_shim(target=upstream, routes=(Route(upstream=UPSTREAM_URL, kind="responses"),))


# --------------------------------------------------------------------------- finding 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_reasoning_is_not_recalled_into_another_conversation(
    make_shim: MakeShim, connect: Connect, stream: bool
) -> None:
    """Two conversations of one caller whose assistant turns read the same: the second one's
    upstream request must not carry the first one's reasoning (summary or encrypted_content)."""
    upstream = ScriptedResponses(reasoning=["Alice's private plan."])
    client = connect(_responses_shim(make_shim, upstream))
    first = [{"role": "user", "content": "Plan my surprise party."}]
    answer = await client.post(
        "/v1/chat/completions", json={"model": "m", "messages": first, "stream": stream}
    )
    assert answer.status_code == 200
    said = content_of(chunks_of(answer.text)) if stream else answer.json()["choices"][0]["message"]["content"]
    # Another conversation, whose assistant turn has the very same text after a different history.
    other = [
        {"role": "user", "content": "Something unrelated."},
        {"role": "assistant", "content": said},
        {"role": "user", "content": "Thanks."},
    ]
    assert (
        await client.post("/v1/chat/completions", json={"model": "m", "messages": other})
    ).status_code == 200
    sent = upstream.requests[-1]["input"]
    assert [i["type"] for i in sent] == ["message", "message", "message"], sent
    assert "Alice" not in repr(sent) and "enc:" not in repr(sent)
    # The conversation it belongs to still gets it back (same caller, same history).
    own = [*first, {"role": "assistant", "content": said}, {"role": "user", "content": "More."}]
    await client.post("/v1/chat/completions", json={"model": "m", "messages": own})
    assert [i["type"] for i in upstream.requests[-1]["input"]] == [
        "message",
        "reasoning",
        "message",
        "message",
    ]


# --------------------------------------------------------------------------- finding 2: credentials

SHIM_KEY = "sk-shim-client-key"
USER_KEY = "sk-user-own-upstream-key"
ROUTE_KEY = "sk-route-secret"
RESP = "resp_" + "0" * 48
HELLO = [{"role": "user", "content": "Hello"}]
WINDOW = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."}]

# Every /v1 endpoint: (method, path, JSON body or None). The ones marked upstream reach it.
CALLS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "responses": ("POST", "/v1/responses", {"model": "m", "input": "hi"}),
    "responses-sse": ("POST", "/v1/responses", {"model": "m", "input": "hi", "stream": True}),
    "chat": ("POST", "/v1/chat/completions", {"model": "m", "messages": HELLO}),
    "chat-sse": ("POST", "/v1/chat/completions", {"model": "m", "messages": HELLO, "stream": True}),
    "compact": ("POST", "/v1/responses/compact", {"model": "m", "input": WINDOW}),
    "models": ("GET", "/v1/models", None),
    "get": ("GET", f"/v1/responses/{RESP}", None),
    "delete": ("DELETE", f"/v1/responses/{RESP}", None),
    "input-items": ("GET", f"/v1/responses/{RESP}/input_items", None),
    "cancel": ("POST", f"/v1/responses/{RESP}/cancel", None),
    "unknown-v1": ("GET", "/v1/files", None),
}
UPSTREAM_CALLS = ("responses", "responses-sse", "chat", "chat-sse", "compact", "models")


def _auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


async def _call(client: httpx.AsyncClient, name: str, key: str | None) -> httpx.Response:
    method, path, body = CALLS[name]
    return await client.request(method, path, json=body, headers=_auth(key))


@pytest.mark.parametrize("key", [None, "sk-wrong", f"Basic {SHIM_KEY}"], ids=["none", "wrong", "not-bearer"])
@pytest.mark.parametrize("route_key", [None, ROUTE_KEY], ids=["keyless-route", "own-key-route"])
@pytest.mark.parametrize("name", list(CALLS))
async def test_with_api_keys_every_endpoint_wants_one(
    make_shim: MakeShim, connect: Connect, name: str, route_key: str | None, key: str | None
) -> None:
    shim = make_shim(routes=(Route(upstream=UPSTREAM_URL, api_key=route_key),), api_keys=(SHIM_KEY,))
    client = connect(shim)
    if key and key.startswith("Basic"):
        method, path, body = CALLS[name]
        response = await client.request(method, path, json=body, headers={"authorization": key})
    else:
        response = await _call(client, name, key)
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert shim.upstream.requests == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/schema/openapi.json"])
async def test_operations_endpoints_stay_open(make_shim: MakeShim, connect: Connect, path: str) -> None:
    """Probes and scrapers carry no key; these answers hold no caller's data (docs/security.md)."""
    shim = make_shim(api_keys=(SHIM_KEY,))
    assert (await connect(shim).get(path)).status_code == 200


# (id, route has its own key, shim api keys, client key, Authorization the upstream receives)
FORWARDING = [
    ("pass-through", False, (), USER_KEY, f"Bearer {USER_KEY}"),
    ("pass-through-anonymous", False, (), None, None),
    ("shim-key-keyless-route", False, (SHIM_KEY,), SHIM_KEY, None),
    ("shim-key-own-key-route", True, (SHIM_KEY,), SHIM_KEY, f"Bearer {ROUTE_KEY}"),
]


@pytest.mark.parametrize("kind", ["chat", "responses"])
@pytest.mark.parametrize(
    ("own_key", "api_keys", "client_key", "expected"), [pytest.param(*r[1:], id=r[0]) for r in FORWARDING]
)
@pytest.mark.parametrize("name", UPSTREAM_CALLS)
async def test_which_key_each_upstream_receives(
    make_shim: MakeShim,
    connect: Connect,
    name: str,
    kind: str,
    own_key: bool,
    api_keys: tuple[str, ...],
    client_key: str | None,
    expected: str | None,
) -> None:
    """A key that matched the shim's own list is never forwarded; a pass-through key only to the
    route the client's own request reaches."""
    route = Route(upstream=UPSTREAM_URL, kind=kind, api_key=ROUTE_KEY if own_key else None)  # type: ignore[arg-type]
    target = {"target": ScriptedResponses()} if kind == "responses" else {}
    shim = make_shim(routes=(route,), api_keys=api_keys, **target)
    response = await _call(connect(shim), name, client_key)
    assert shim.upstream.requests, response.text
    for request in shim.upstream.requests:
        assert request.headers.get("authorization") == expected, (request.method, request.url)
        if client_key and client_key in api_keys:
            sent = b"\n".join(k + b": " + v for k, v in request.headers.raw) + request.content
            assert client_key.encode() not in sent


GPT = Route(upstream="http://gpt.test/v1", match="gpt-4o")
OPEN = Route(upstream="http://open.test/v1", match="*")
NEBIUS = Route(upstream="http://nebius.test/v1", provider="nebius", model="kimi")

# (id, routes, shim api keys, client key, {upstream host: Authorization it receives}, model ids)
MODELS = [
    pytest.param(
        (OPEN,), (), USER_KEY, {"open.test": f"Bearer {USER_KEY}"}, ["scripted"], id="one-pass-through"
    ),
    pytest.param(
        (GPT, OPEN),
        (),
        None,
        {"gpt.test": None, "open.test": None},
        ["gpt-4o", "scripted"],  # the literal match: a name the route serves whatever its upstream lists
        id="anonymous-asks-all",
    ),
    # Which of two pass-through routes would this key reach? Unsure: list them from configuration.
    pytest.param((GPT, OPEN, NEBIUS), (), USER_KEY, {}, ["gpt-4o", "kimi:nebius"], id="two-pass-through"),
    pytest.param(
        (msgspec.structs.replace(GPT, api_key="sk-gpt"), OPEN),
        (),
        USER_KEY,
        {"open.test": f"Bearer {USER_KEY}"},  # the own-key route needs a shim key: unusable here
        ["scripted"],
        id="own-key-route-unusable",
    ),
    pytest.param(
        (
            msgspec.structs.replace(GPT, api_key="sk-gpt"),
            OPEN,
            msgspec.structs.replace(NEBIUS, api_key="sk-n"),
        ),
        (SHIM_KEY,),
        SHIM_KEY,
        {"gpt.test": "Bearer sk-gpt", "open.test": None, "nebius.test": "Bearer sk-n"},
        ["gpt-4o", "scripted", "scripted:nebius"],
        id="shim-keys",
    ),
]


@pytest.mark.parametrize(("routes", "api_keys", "client_key", "seen", "ids"), MODELS)
async def test_models_sends_a_client_key_only_where_its_requests_go(
    make_shim: MakeShim,
    connect: Connect,
    routes: tuple[Route, ...],
    api_keys: tuple[str, ...],
    client_key: str | None,
    seen: dict[str, str | None],
    ids: list[str],
) -> None:
    shim = make_shim(routes=routes, api_keys=api_keys)
    response = await connect(shim).get("/v1/models", headers=_auth(client_key))
    assert response.status_code == 200, response.text
    assert sorted(m["id"] for m in response.json()["data"]) == ids
    assert {r.url.host: r.headers.get("authorization") for r in shim.upstream.requests} == seen


def test_with_api_keys_the_websocket_wants_one(make_shim: MakeShim) -> None:
    shim = make_shim(api_keys=(SHIM_KEY,))
    with TestClient(app=shim.app) as client:
        for headers in ({}, _auth("sk-wrong")):
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect("/v1/responses", headers=headers),
            ):
                pytest.fail("the handshake was accepted")
            assert refused.value.code == 1008
            assert "API key" in refused.value.detail
        with client.websocket_connect("/v1/responses", headers=_auth(SHIM_KEY)) as ws:
            ws.send_text(json.dumps({"type": "response.create", "model": "m", "input": "hi"}))
            while (event := json.loads(ws.receive_text()))["type"] != "response.completed":
                assert event["type"] != "error", event
    assert [r.headers.get("authorization") for r in shim.upstream.requests] == [None]


# --------------------------------------------------------------------------- finding 12: odd bearers

NON_ASCII = [
    "Bearer sk-caf\u00e9".encode(),
    b"Bearer sk-\xff\xfe",
    "Bearer \u043a\u043b\u044e\u0447".encode(),
]


@pytest.mark.parametrize("raw", NON_ASCII, ids=["latin", "bytes", "cyrillic"])
@pytest.mark.parametrize("api_keys", [(), (SHIM_KEY,)], ids=["pass-through", "shim-keys"])
@pytest.mark.parametrize("name", ["responses", "responses-sse", "chat", "models", "get", "compact"])
async def test_a_bearer_that_is_not_ascii_is_a_401(
    make_shim: MakeShim, connect: Connect, name: str, api_keys: tuple[str, ...], raw: bytes
) -> None:
    shim = make_shim(api_keys=api_keys)
    method, path, body = CALLS[name]
    response = await connect(shim).request(method, path, json=body, headers={"authorization": raw})
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert shim.upstream.requests == []


@pytest.mark.parametrize("raw", NON_ASCII, ids=["latin", "bytes", "cyrillic"])
@pytest.mark.parametrize("api_keys", [(), (SHIM_KEY,)], ids=["pass-through", "shim-keys"])
def test_a_bearer_that_is_not_ascii_is_refused_on_the_websocket(
    make_shim: MakeShim, api_keys: tuple[str, ...], raw: bytes
) -> None:
    shim = make_shim(api_keys=api_keys)
    with (
        TestClient(app=shim.app) as client,
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/v1/responses", headers={"authorization": raw}),  # type: ignore[dict-item]
    ):
        pytest.fail("the handshake was accepted")
    assert refused.value.code == 1008
    assert shim.upstream.requests == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"authorization", b"Bearer sk-\xc3\xa9")], 401),
        ([], 401),
        ([(b"authorization", SHIM_KEY.encode())], 401),
    ],
    ids=["non-ascii", "none", "no-scheme"],
)
async def test_a_refused_websocket_handshake_is_a_401_where_the_server_can_say_so(
    make_shim: MakeShim, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    """Servers offering the denial-response extension (uvicorn) answer the handshake with the
    error envelope itself."""
    shim = make_shim(api_keys=(SHIM_KEY,))
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/v1/responses",
        "raw_path": b"/v1/responses",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"shim"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("shim", 80),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    await shim.app(scope, receive, send)  # type: ignore[arg-type]
    start, body = sent
    assert (start["type"], start["status"]) == ("websocket.http.response.start", status)
    assert json.loads(body["body"])["error"]["type"] == "authentication_error"

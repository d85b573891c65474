"""What a newcomer sends in the first hour is honoured or refused, never silently wrong (issue 17).

Models listed are models served (``GET /v1/models`` and ``GET /v1/models/{id}``); a Chat field on
``/v1/responses`` and an unknown field on ``/v1/responses/compact`` are refused; the compact
endpoint's ``max_output_tokens`` and the route's limit reach the upstream; ``--store none`` says
``store: false``; the strict diagnostics policy does not claim to have sent anything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.settings import Route
from tests.server.harness import Shim

Connect = Callable[[Shim], httpx.AsyncClient]
MakeShim = Callable[..., Shim]

# --------------------------------------------------------------------------- models

# routes -> (ids listed, id -> status of GET /v1/models/{id}). The scripted upstream lists "scripted".
MODEL_CASES = {
    "catch-all lists the upstream's model": (
        (Route(upstream="http://a.test/v1"),),
        ["scripted"],
        {"scripted": 200, "other": 404},
    ),
    "a glob that misses the upstream's id lists nothing": (
        (Route(upstream="http://a.test/v1", match="m-*"),),
        [],
        {"scripted": 404, "m-1": 404},
    ),
    "provider route lists its suffixed id only": (
        (Route(upstream="http://a.test/v1", match="m-*"), Route(upstream="http://b.test/v1", provider="neb")),
        ["scripted:neb"],
        {"scripted:neb": 200, "scripted": 404},
    ),
    "a literal match is listed (the route serves that name)": (
        (Route(upstream="http://a.test/v1", match="gemma", model="scripted"),),
        ["gemma"],
        {"gemma": 200, "scripted": 404},
    ),
    "an id with a slash": (
        (Route(upstream="http://a.test/v1", match="org/model"),),
        ["org/model"],
        {"org/model": 200},
    ),
}


@pytest.mark.parametrize("case", MODEL_CASES.values(), ids=MODEL_CASES.keys())
async def test_models_listed_are_models_served(
    make_shim: MakeShim, connect: Connect, case: tuple[tuple[Route, ...], list[str], dict[str, int]]
) -> None:
    routes, listed, retrieved = case
    client = connect(make_shim(routes=routes))
    response = await client.get("/v1/models")
    assert sorted(m["id"] for m in response.json()["data"]) == sorted(listed)
    for model_id, status in retrieved.items():
        one = await client.get(f"/v1/models/{model_id}")
        assert one.status_code == status, (model_id, one.text)
        if status == 200:
            assert (one.json()["id"], one.json()["object"]) == (model_id, "model")
            # every listed id also answers a request
            turn = await client.post("/v1/responses", json={"model": model_id, "input": "hi"})
            assert turn.status_code == 200, turn.text
        else:
            assert one.json()["error"]["code"] == "model_not_found"


async def test_sdk_retrieves_a_model(sdk: Any) -> None:
    model = await sdk.models.retrieve("scripted")
    assert (model.id, model.object) == ("scripted", "model")


# --------------------------------------------------------------------------- refused fields

REFUSED = {
    "max_tokens on responses": ("/v1/responses", {"max_tokens": 8}, "max_tokens", "max_output_tokens"),
    "max_completion_tokens on responses": (
        "/v1/responses",
        {"max_completion_tokens": 8},
        "max_completion_tokens",
        "max_output_tokens",
    ),
    "unknown field on compact": (
        "/v1/responses/compact",
        {"temperature": 0.2},
        "temperature",
        "max_output_tokens",
    ),
    "a typo on compact": (
        "/v1/responses/compact",
        {"previous_response": "r"},
        "previous_response",
        "previous_response_id",
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
async def test_fields_that_would_be_ignored_are_refused(
    client: httpx.AsyncClient, shim: Shim, case: tuple[str, dict[str, Any], str, str]
) -> None:
    path, extra, param, hint = case
    response = await client.post(path, json={"model": "m", "input": "hi", **extra})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", param)
    assert hint in error["message"]
    assert shim.upstream.requests == []


def _upstream_body(shim: Shim) -> dict[str, Any]:
    (request,) = [r for r in shim.upstream.requests if r.url.path.endswith("/chat/completions")]
    body: dict[str, Any] = json.loads(request.content)
    return body


COMPACT_LIMITS = {
    "the client's limit": ({"max_output_tokens": 7}, None, 7),
    "the route's limit when the client sets none": ({}, 48, 48),
    "the client's limit beats the route's": ({"max_output_tokens": 5}, 48, 5),
    "the prompt file's limit otherwise": ({}, None, 1024),
}


@pytest.mark.parametrize("case", COMPACT_LIMITS.values(), ids=COMPACT_LIMITS.keys())
async def test_compaction_limit_reaches_the_upstream(
    make_shim: MakeShim, connect: Connect, case: tuple[dict[str, Any], int | None, int]
) -> None:
    extra, route_limit, sent = case
    shim = make_shim(
        routes=(Route(upstream="http://a.test/v1", max_output_tokens=route_limit, stop=("\n",)),)
    )
    response = await connect(shim).post("/v1/responses/compact", json={"model": "m", "input": "hi", **extra})
    assert response.status_code == 200, response.text
    body = _upstream_body(shim)
    assert body["max_completion_tokens"] == sent
    assert body["stop"] == ["\n"]  # the route's settings for small models apply to the summary too


@pytest.mark.parametrize("store", ["none", "memory://"])
async def test_store_none_says_store_false(make_shim: MakeShim, connect: Connect, store: str) -> None:
    client = connect(make_shim(store=store))
    response = await client.post("/v1/responses", json={"model": "m", "input": "hi"})
    assert response.json()["store"] is (store != "none")
    retrieved = await client.get(f"/v1/responses/{response.json()['id']}")
    assert retrieved.status_code == (404 if store == "none" else 200)


@pytest.mark.parametrize("policy", ["error", "warn"])
async def test_lossy_json_schema_message_is_true_under_each_policy(
    make_shim: MakeShim, connect: Connect, policy: str
) -> None:
    shim = make_shim(dialect="deepseek", diagnostics=policy)
    fmt = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    response = await connect(shim).post(
        "/v1/responses", json={"model": "m", "input": "hi", "text": {"format": fmt}}
    )
    if policy == "error":
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert "sent" not in message and "json_object" in message
        assert shim.upstream.requests == []
    else:
        assert response.status_code == 200
        assert response.headers["x-shim-diagnostics"] == "lossy_value:text.format"


# --------------------------------------------------------------------------- chat pass-through

PASSTHROUGH = {
    "parts become a string, max_completion_tokens goes as max_tokens": (
        {
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
            "max_completion_tokens": 4,
        },
        {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4},
        None,
    ),
    "an image the upstream cannot take is reported": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is it?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                }
            ]
        },
        {"messages": [{"role": "user", "content": "What is it?"}]},
        "unsupported_content:messages[0].content[1]",
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("case", PASSTHROUGH.values(), ids=PASSTHROUGH.keys())
async def test_chat_pass_through_fits_the_dialect(
    make_shim: MakeShim,
    connect: Connect,
    case: tuple[dict[str, Any], dict[str, Any], str | None],
    stream: bool,
) -> None:
    sent, upstream, reported = case
    shim = make_shim(dialect="llamacpp-python")
    response = await connect(shim).post("/v1/chat/completions", json={"model": "m", **sent, "stream": stream})
    assert response.status_code == 200, response.text
    assert response.headers.get("x-shim-diagnostics") == reported
    body = _upstream_body(shim)
    assert {k: body[k] for k in upstream} == upstream
    assert "max_completion_tokens" not in body


# --------------------------------------------------------------------------- stream_to_cancel


@pytest.mark.parametrize(("dialect", "streamed"), [("llamacpp-python", True), ("openai", False)])
async def test_background_turn_goes_up_streamed_where_only_a_stream_stops(
    make_shim: MakeShim, connect: Connect, dialect: str, streamed: bool
) -> None:
    """``stream_to_cancel``: a background turn is sent streamed (a cancel then stops the model;
    tests/e2e/test_upstream_stops.py proves it on llama) and still completes whole."""
    shim = make_shim(dialect=dialect)
    client = connect(shim)
    queued = (
        await client.post("/v1/responses", json={"model": "m", "input": "hi", "background": True})
    ).json()
    for _ in range(200):
        done = (await client.get(f"/v1/responses/{queued['id']}")).json()
        if done["status"] not in ("queued", "in_progress"):
            break
        await asyncio.sleep(0.01)
    assert done["status"] == "completed", done
    assert done["output"][0]["content"][0]["text"]
    assert _upstream_body(shim).get("stream", False) is streamed

"""WebSocket turns and the store: stored ids hydrate across connections and transports,
``store: false`` stays in the connection, and another caller's id looks missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.server.harness import Shim, text_of
from tests.server.test_websocket import completed, error_of, turn

ALICE = {"authorization": "Bearer sk-alice"}
MALLORY = {"authorization": "Bearer sk-mallory"}


@pytest.fixture
def http(shim: Shim) -> Iterator[TestClient[Any]]:
    """One client for both transports, so HTTP and WebSocket share the app's event loop."""
    with TestClient(app=shim.app) as client:
        yield client


def ws_turn(
    http: TestClient[Any], body: dict[str, Any], headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    with http.websocket_connect("/v1/responses", headers=headers) as ws:
        return turn(ws, body)


def test_http_response_continues_over_websocket(http: TestClient[Any], shim: Shim) -> None:
    first = http.post("/v1/responses", json={"model": "m", "input": "over http"}).json()
    second = completed(ws_turn(http, {"model": "m", "input": "over ws", "previous_response_id": first["id"]}))
    assert second["previous_response_id"] == first["id"]
    messages = shim.upstream.bodies[-1]["messages"]
    assert [text_of(m) for m in messages][::2] == ["over http", "over ws"]


def test_stored_websocket_turn_is_retrievable_over_http(http: TestClient[Any], shim: Shim) -> None:
    final = completed(ws_turn(http, {"model": "m", "input": "hello"}))
    response = http.get(f"/v1/responses/{final['id']}")
    assert response.status_code == 200
    assert response.json() == final
    items = http.get(f"/v1/responses/{final['id']}/input_items").json()["data"]
    assert [i["content"][0]["text"] for i in items] == ["hello"]
    follow = http.post(
        "/v1/responses", json={"model": "m", "input": "more", "previous_response_id": final["id"]}
    )
    assert follow.status_code == 200


def test_store_false_websocket_turn_stays_in_the_connection(http: TestClient[Any]) -> None:
    with http.websocket_connect("/v1/responses") as ws:
        final = completed(turn(ws, {"model": "m", "input": "hello", "store": False}))
        again = completed(turn(ws, {"model": "m", "input": "more", "previous_response_id": final["id"]}))
        assert again["previous_response_id"] == final["id"], "continuable within the connection"
    assert http.get(f"/v1/responses/{final['id']}").status_code == 404
    follow = http.post(
        "/v1/responses", json={"model": "m", "input": "more", "previous_response_id": final["id"]}
    )
    assert follow.json()["error"]["code"] == "previous_response_not_found"


def test_another_callers_id_looks_missing_over_websocket(http: TestClient[Any]) -> None:
    owned = http.post("/v1/responses", json={"model": "m", "input": "secret"}, headers=ALICE).json()["id"]
    missing = "resp_" + "0" * 48
    frames = [
        error_of(ws_turn(http, {"model": "m", "input": "x", "previous_response_id": i}, MALLORY))
        for i in (owned, missing)
    ]
    assert json.dumps(frames[0]).replace(owned, missing) == json.dumps(frames[1])
    assert frames[1]["status"] == 404 and frames[1]["error"]["code"] == "previous_response_not_found"
    mine = ws_turn(http, {"model": "m", "input": "x", "previous_response_id": owned}, ALICE)
    assert completed(mine)["previous_response_id"] == owned

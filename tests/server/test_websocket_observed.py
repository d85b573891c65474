"""Each WebSocket turn is one request for the operator: an access-log line and a
``shim_requests_total`` series (method ``WEBSOCKET``), as docs/operations.md promises."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.server.harness import Shim
from tests.server.test_websocket import turn


def test_every_turn_is_logged_and_counted(shim: Shim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shim.access")
    with TestClient(app=shim.app) as client:
        with client.websocket_connect("/v1/responses") as ws:
            ok = turn(ws, {"model": "m", "input": "one"})
            refused = turn(ws, {"input": "no model"})
            again = turn(ws, {"model": "m", "input": "two", "previous_response_id": ok[-1]["response"]["id"]})
        metrics = client.get("/metrics").text
    assert [ok[-1]["type"], refused[-1]["type"], again[-1]["type"]] == [
        "response.completed",
        "error",
        "response.completed",
    ]
    lines: list[dict[str, Any]] = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "shim.access"
    ]
    turns = [line for line in lines if line["method"] == "WEBSOCKET"]
    assert [(t["route"], t["status"], t["stream"]) for t in turns] == [
        ("/v1/responses", 200, True),
        ("/v1/responses", 400, True),
        ("/v1/responses", 200, True),
    ]
    assert turns[0]["upstream"] is not None and turns[0]["output_tokens"]
    assert len({t["request_id"] for t in turns}) == 3
    assert 'shim_requests_total{method="WEBSOCKET",route="/v1/responses",status="200"} 2.0' in metrics
    assert 'shim_requests_total{method="WEBSOCKET",route="/v1/responses",status="400"} 1.0' in metrics

"""Reasoning that survives stateless clients: sealed ``encrypted_content`` through the server.

The upstream here is ``tests/support/deepseek_thinking_synthetic.py``: a hand-made stand-in for
DeepSeek's thinking mode with tools. It thinks (``reasoning_content``) then calls a tool; after the
tool result it thinks and answers. Like DeepSeek, it answers 400 when an assistant message carrying
``tool_calls`` comes back without its ``reasoning_content``. A Codex-style client (``store:
false``, ``include: ["reasoning.encrypted_content"]``, the whole history resent) can only pass
the second turn if the shim opened the sealed reasoning and replayed it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from shim.conversation.sealing import PREFIX
from shim.settings import Route
from tests.server.harness import UPSTREAM_URL, Shim, parse_sse
from tests.support import deepseek_thinking_synthetic
from tests.support.deepseek_thinking_synthetic import ANSWER, THOUGHT_CALL

INCLUDE = ["reasoning.encrypted_content"]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the weather.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def deepseek(make_shim: Callable[..., Shim]) -> Shim:
    return make_shim(
        routes=(Route(upstream=UPSTREAM_URL, dialect="deepseek"),),
        api_keys=("alice", "mallory"),
        target=deepseek_thinking_synthetic.app,
    )


def _auth(key: str = "alice") -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def _create(client: httpx.AsyncClient, body: dict[str, Any], key: str = "alice") -> dict[str, Any]:
    """POST /v1/responses; the final resource (from ``response.completed`` when streaming)."""
    response = await client.post("/v1/responses", json=body, headers=_auth(key))
    assert response.status_code == 200, response.text
    if not body.get("stream"):
        return dict(response.json())
    events, _ = parse_sse(response.text)
    done = [json.loads(d)["item"] for name, d in events if name == "response.output_item.done"]
    (final,) = [json.loads(d)["response"] for name, d in events if name == "response.completed"]
    # The sealed blob is the same in output_item.done and in response.completed.
    assert [i.get("encrypted_content") for i in done] == [i.get("encrypted_content") for i in final["output"]]
    return dict(final)


def _turn_one(stream: bool, include: list[str] | None = INCLUDE) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "deepseek-chat",
        "store": False,
        "input": [{"role": "user", "content": "What's the weather in Paris?"}],
        "tools": [WEATHER],
        "stream": stream,
    }
    if include is not None:
        body["include"] = include
    return body


def _turn_two(first: dict[str, Any], stream: bool) -> dict[str, Any]:
    """What Codex sends next: the whole history, the output items as given, the tool result."""
    call = next(i for i in first["output"] if i["type"] == "function_call")
    history = [*_turn_one(stream)["input"], *first["output"]]
    for item in history:
        if item.get("type") == "reasoning":
            item.pop("content", None)  # clients resend the blob only
    return {
        **_turn_one(stream),
        "input": [
            *history,
            {"type": "function_call_output", "call_id": call["call_id"], "output": '{"temp_c":18}'},
        ],
    }


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_stateless_round_trip_replays_reasoning_to_deepseek(
    deepseek: Shim, connect: Callable[[Shim], httpx.AsyncClient], stream: bool
) -> None:
    client = connect(deepseek)
    first = await _create(client, _turn_one(stream))
    (reasoning,) = [i for i in first["output"] if i["type"] == "reasoning"]
    blob = reasoning["encrypted_content"]
    assert blob.startswith(PREFIX) and THOUGHT_CALL[0] not in blob

    second = await _create(client, _turn_two(first, stream))
    assert second["status"] == "completed"
    assert second["output"][-1]["content"][0]["text"] == ANSWER
    replayed = deepseek.upstream.bodies[-1]["messages"]
    (assistant,) = [m for m in replayed if m["role"] == "assistant"]
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    assert assistant["reasoning_content"] == "".join(THOUGHT_CALL)
    assert blob not in json.dumps(replayed)


async def test_without_include_no_blob_and_deepseek_refuses_the_bare_history(
    deepseek: Shim, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    client = connect(deepseek)
    first = await _create(client, _turn_one(False, include=None))
    (reasoning,) = [i for i in first["output"] if i["type"] == "reasoning"]
    assert "encrypted_content" not in reasoning
    body = _turn_two(first, False)
    body.pop("include")
    response = await client.post("/v1/responses", json=body, headers=_auth())
    assert response.status_code == 400, "the fake upstream really demands the reasoning back"


@pytest.mark.parametrize(
    ("name", "mangle", "key"),
    [
        ("tampered", lambda blob: blob[:-4] + ("AAAA" if not blob.endswith("AAAA") else "BBBB"), "alice"),
        ("truncated", lambda blob: blob[: len(blob) // 2], "alice"),
        ("foreign_format", lambda blob: "gAAAAABpM0Yj-x1y2z3=", "alice"),
        ("other_credential", lambda blob: blob, "mallory"),
    ],
)
async def test_bad_blob_is_400_and_never_reaches_upstream(
    deepseek: Shim,
    connect: Callable[[Shim], httpx.AsyncClient],
    name: str,
    mangle: Callable[[str], str],
    key: str,
) -> None:
    client = connect(deepseek)
    first = await _create(client, _turn_one(False))
    body = _turn_two(first, False)
    n = next(i for i, item in enumerate(body["input"]) if item.get("type") == "reasoning")
    blob = body["input"][n]["encrypted_content"]
    body["input"][n]["encrypted_content"] = mangle(blob)
    sent = len(deepseek.upstream.requests)
    response = await client.post("/v1/responses", json=body, headers=_auth(key))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_encrypted_content"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == f"input[{n}].encrypted_content"
    assert THOUGHT_CALL[0] not in response.text and blob not in response.text
    assert len(deepseek.upstream.requests) == sent


def _ws_turn(ws: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    ws.send_text(json.dumps({"type": "response.create", **body}))
    frames = [json.loads(ws.receive_text(timeout=5))]
    while frames[-1]["type"] not in {"response.completed", "response.incomplete", "response.failed", "error"}:
        frames.append(json.loads(ws.receive_text(timeout=5)))
    return frames


def test_websocket_stateless_round_trip(deepseek: Shim) -> None:
    with TestClient(app=deepseek.app) as http, http.websocket_connect("/v1/responses", headers=_auth()) as ws:
        first_body = _turn_one(True)
        del first_body["stream"]
        frames = _ws_turn(ws, first_body)
        first = frames[-1]["response"]
        assert frames[-1]["type"] == "response.completed", frames[-1]
        (done,) = [
            f["item"]
            for f in frames
            if f["type"] == "response.output_item.done" and f["item"]["type"] == "reasoning"
        ]
        assert done["encrypted_content"].startswith(PREFIX)
        second_body = _turn_two(first, True)
        del second_body["stream"]
        frames = _ws_turn(ws, second_body)
    assert frames[-1]["type"] == "response.completed", frames[-1]
    (assistant,) = [m for m in deepseek.upstream.bodies[-1]["messages"] if m["role"] == "assistant"]
    assert assistant["reasoning_content"] == "".join(THOUGHT_CALL)

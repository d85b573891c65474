"""``POST /v1/responses/compact`` over the scripted Chat upstream, and the compaction item coming back.

The scripted model answers every request with a fixed sentence plus the start of the last text it
saw, so the "summary" is predictable: tests can follow it from the summarising request, through the
sealed item, to the summary message replayed upstream on the next turn (HTTP and WebSocket).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openresponses_types as spec
import pytest
from litestar.testing import TestClient

from shim.conversation.sealing import PREFIX
from shim.settings import Route
from shim.translate.compaction import compaction_config
from tests.server.harness import UPSTREAM_URL, Shim, status_app, text_of
from tests.support import scripted_chat

WINDOW = [
    {
        "type": "message",
        "role": "user",
        "content": "We agreed to launch on Tuesday and notify support first.",
    },
    {"type": "message", "role": "assistant", "content": "Understood. The launch is Tuesday."},
]


def _compact_body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "input": WINDOW, **extra}


async def _compact(client: httpx.AsyncClient, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return await client.post("/v1/responses/compact", json=body, headers=headers)


async def test_compact_returns_the_compaction_resource(client: httpx.AsyncClient, shim: Shim) -> None:
    response = await _compact(client, _compact_body(prompt_cache_key="k", instructions="Be brief."))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    spec.CompactResource.model_validate_json(response.content)  # the spec's schema, third-party models
    data = response.json()
    assert set(data) == {"id", "object", "output", "created_at", "usage"}
    assert data["object"] == "response.compaction"
    kept, compaction = data["output"]
    assert kept["type"] == "message" and kept["role"] == "user" and kept["status"] == "completed"
    assert kept["content"] == [{"type": "input_text", "text": WINDOW[0]["content"]}]
    assert set(compaction) == {"type", "id", "encrypted_content"}
    assert compaction["type"] == "compaction" and compaction["id"].startswith("cmp_")
    assert compaction["encrypted_content"].startswith(PREFIX)
    assert "Tuesday" not in compaction["encrypted_content"]
    assert data["usage"]["total_tokens"] > 0

    (sent,) = shim.upstream.bodies
    config = compaction_config()
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert text_of(sent["messages"][0]) == "Be brief."
    assert text_of(sent["messages"][-1]) == config.summarise.prompt.strip()
    assert sent["max_completion_tokens"] == config.summarise.max_output_tokens
    assert sent["prompt_cache_key"] == "k"
    assert not sent.get("stream")


@pytest.mark.parametrize(
    ("name", "body", "status", "code", "param"),
    [
        ("missing_model", {"input": WINDOW}, 400, "missing_required_parameter", "model"),
        ("empty_model", {"model": "", "input": WINDOW}, 400, "missing_required_parameter", "model"),
        ("no_input", {"model": "m"}, 400, "missing_input", "input"),
        (
            "bad_item",
            {"model": "m", "input": [{"type": "message", "role": "user"}]},
            400,
            "invalid_value",
            None,
        ),
        (
            "unknown_previous",
            {"model": "m", "input": WINDOW, "previous_response_id": "resp_nope"},
            404,
            "previous_response_not_found",
            "previous_response_id",
        ),
        (
            "bad_compaction_item",
            {"model": "m", "input": [{"type": "compaction", "encrypted_content": PREFIX + "A" * 40}]},
            400,
            "invalid_encrypted_content",
            "input[0].encrypted_content",
        ),
    ],
)
async def test_compact_errors_use_the_envelope(
    client: httpx.AsyncClient,
    shim: Shim,
    name: str,
    body: dict[str, Any],
    status: int,
    code: str,
    param: str | None,
) -> None:
    response = await _compact(client, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert shim.upstream.requests == []


EMPTY_ANSWER = {
    "id": "c",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
}


async def test_empty_summary_gets_the_shims_extract(make_shim: Callable[..., Shim], connect: Any) -> None:
    """A model that writes nothing (Gemma 3 270M on every window measured): the compaction holds
    the shim's marked extract, reported in x-shim-diagnostics, and replays like any summary."""
    shim = make_shim()
    client = connect(shim)
    shim.upstream.use(status_app(200, EMPTY_ANSWER))
    response = await _compact(client, _compact_body())
    assert response.status_code == 200, response.text
    assert response.headers["x-shim-diagnostics"] == "emulated:summary"
    spec.CompactResource.model_validate_json(response.content)
    compacted = response.json()
    shim.upstream.use(scripted_chat.app)
    follow_up = {"model": "m", "input": [*compacted["output"], {"role": "user", "content": "When?"}]}
    assert (await client.post("/v1/responses", json=follow_up)).status_code == 200
    config = compaction_config()
    replayed = text_of(shim.upstream.bodies[-1]["messages"][1])
    assert replayed == "\n".join(
        [
            config.replay.prefix + config.fallback.prefix,
            f"user: {WINDOW[0]['content']}",
            f"assistant: {WINDOW[1]['content']}",
        ]
    )


async def test_empty_summary_under_policy_error_is_an_upstream_error(
    make_shim: Callable[..., Shim], connect: Any
) -> None:
    shim = make_shim(diagnostics="error")  # no emulation wanted: the 502 says what happened
    shim.upstream.use(status_app(200, EMPTY_ANSWER))
    response = await _compact(connect(shim), _compact_body())
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_empty_summary"


async def test_compaction_item_is_replayed_as_a_summary_message(
    shim: Shim, client: httpx.AsyncClient
) -> None:
    compacted = (await _compact(client, _compact_body())).json()
    summary_words = scripted_chat.ANSWER  # the scripted model's answer starts with it
    follow_up = {
        "model": "m",
        "store": False,
        "input": [*compacted["output"], {"type": "message", "role": "user", "content": "When do we launch?"}],
    }
    response = await client.post("/v1/responses", json=follow_up)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    messages = shim.upstream.bodies[-1]["messages"]
    config = compaction_config()
    assert [m["role"] for m in messages] == ["user", config.replay.role, "user"]
    assert text_of(messages[0]) == WINDOW[0]["content"]
    assert text_of(messages[1]).startswith(config.replay.prefix + summary_words)
    assert text_of(messages[2]) == "When do we launch?"


async def test_compaction_item_belongs_to_its_caller(make_shim: Callable[..., Shim], connect: Any) -> None:
    shim = make_shim(api_keys=("alice", "mallory"))
    client = connect(shim)
    compacted = (await _compact(client, _compact_body(), key="alice")).json()
    item = compacted["output"][-1]
    body = {"model": "m", "input": [item, {"role": "user", "content": "go on"}]}
    response = await client.post("/v1/responses", json=body, headers={"authorization": "Bearer mallory"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_encrypted_content"
    assert response.json()["error"]["param"] == "input[0].encrypted_content"


async def test_compact_continues_a_stored_chain_and_compacts_again(
    shim: Shim, client: httpx.AsyncClient
) -> None:
    first = (
        await client.post("/v1/responses", json={"model": "m", "input": "The code word is slate."})
    ).json()
    compacted = (
        await _compact(client, {"model": "m", "previous_response_id": first["id"], "input": "Compress."})
    ).json()
    sent = shim.upstream.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "user"]
    assert text_of(sent[0]) == "The code word is slate."
    assert [i["type"] for i in compacted["output"]] == ["message", "message", "compaction"]

    again = (await _compact(client, {"model": "m", "input": compacted["output"]})).json()
    sent = shim.upstream.bodies[-1]["messages"]
    assert any(text_of(m).startswith(compaction_config().replay.prefix) for m in sent), "old summary opened"
    assert [i["type"] for i in again["output"]] == ["message", "message", "compaction"]


def test_websocket_new_chain_from_compacted_window(shim: Shim) -> None:
    with TestClient(app=shim.app) as http:
        compacted = http.post("/v1/responses/compact", json=_compact_body()).json()
        with http.websocket_connect("/v1/responses") as ws:
            ws.send_text(
                json.dumps(
                    {
                        "type": "response.create",
                        "model": "m",
                        "store": False,
                        "input": [*compacted["output"], {"role": "user", "content": "Reply: compacted"}],
                    }
                )
            )
            frames = []
            while not frames or frames[-1]["type"] not in {"response.completed", "response.failed", "error"}:
                frames.append(json.loads(ws.receive_text(timeout=5)))
    assert frames[-1]["type"] == "response.completed", frames[-1]
    messages = shim.upstream.bodies[-1]["messages"]
    assert text_of(messages[1]).startswith(compaction_config().replay.prefix + scripted_chat.ANSWER)


async def test_responses_upstream_compacts_by_itself(make_shim: Callable[..., Shim], connect: Any) -> None:
    canned = {
        "id": "resp_up",
        "object": "response.compaction",
        "created_at": 1,
        "output": [{"type": "compaction", "id": "cmp_up", "encrypted_content": "gAAAA-upstream-own"}],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    }
    route = Route(upstream=UPSTREAM_URL, kind="responses", model="upstream-model")
    shim = make_shim(routes=(route,), target=status_app(200, canned))
    response = await _compact(connect(shim), _compact_body())
    assert response.status_code == 200, response.text
    assert response.json() == canned
    (request,) = shim.upstream.requests
    assert request.url.path == "/v1/responses/compact"
    assert json.loads(request.content) == {"model": "upstream-model", "input": WINDOW}

"""Context limits over a scripted small-context upstream: ``truncation`` and ``context_management``.

The upstream is the scripted model with a context of ``LIMIT`` bytes of messages: past it, it
answers with a vendor's own context-length error, the bytes of that vendor's fixture folder
(recorded for llama.cpp, synthetic for the others). Under ``"disabled"`` every vendor's words
become one 400 ``context_length_exceeded``; under ``"auto"`` the oldest whole turns go and the
turn completes; ``context_management`` compacts a long chain first.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from shim.settings import Route
from tests.server.harness import UPSTREAM_URL, ASGIApp, Receive, Scope, Send, Shim, build_shim, status_app
from tests.support import scripted_chat
from tests.support.scripted_asgi import read_body

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "responses_over_chat"
LIMIT = 3000  # bytes of `messages` the scripted upstream can take
SYSTEM = "You are terse."

# dialect -> the fixture folder whose upstream bytes are that vendor's overflow answer
VENDORS = {
    "llamacpp-python": "llamacpp/error_context_overflow",  # recorded
    "llamacpp-server": "llamacpp-server/error_context_overflow",  # recorded
    "openai": "openai/error_context_length_exceeded",
    "vllm": "vllm/error_context_overflow_prompt",
    "ollama": "ollama/error_context_overflow",
}


def _overflow(case: str) -> tuple[int, bytes]:
    folder = FIXTURES / case
    status = tomllib.loads((folder / "case.toml").read_text())["upstream_status"]
    body = next(p for p in folder.iterdir() if p.name.startswith("upstream")).read_bytes()
    return status, body


def small_context(case: str, seen: list[dict[str, Any]]) -> ASGIApp:
    """The scripted model, refusing in the vendor's words what is longer than ``LIMIT``."""
    status, error = _overflow(case)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await scripted_chat.app(scope, receive, send)
            return
        body = await read_body(receive)
        request = json.loads(body)
        seen.append(request)
        if len(json.dumps(request["messages"])) > LIMIT:
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": error})
            return
        sent = False

        async def again() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await scripted_chat.app(scope, again, send)

    return app


def _shim(dialect: str, seen: list[dict[str, Any]], window: int | None = None) -> Shim:
    route = Route(upstream=UPSTREAM_URL, dialect=dialect, context_window=window)
    return build_shim(target=small_context(VENDORS[dialect], seen), routes=(route,))


def _history(turns: int) -> list[dict[str, Any]]:
    """A system message, then ``turns`` old turns of about 400 bytes each, each with a tool call
    and its output, then the question."""
    items: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    for n in range(turns):
        items += [
            {"role": "user", "content": f"Question {n}: " + "tell me more " * 25},
            {"type": "function_call", "call_id": f"call_{n}", "name": "look", "arguments": "{}"},
            {"type": "function_call_output", "call_id": f"call_{n}", "output": f"result {n}"},
            {"role": "assistant", "content": f"Answer {n}: " + "more words " * 10},
        ]
    return [*items, {"role": "user", "content": "And the last question?"}]


def _texts(request: dict[str, Any]) -> list[str]:
    return [
        m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
        for m in request["messages"]
        if m.get("content")
    ]


async def _ask(shim: Shim, connect: Callable[[Shim], httpx.AsyncClient], **body: Any) -> httpx.Response:
    client = connect(shim)
    return await client.post("/v1/responses", json={"model": "m", "input": _history(12), **body})


@pytest.mark.parametrize("dialect", sorted(VENDORS))
async def test_disabled_is_one_context_length_error_whatever_the_vendor_said(
    dialect: str, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    seen: list[dict[str, Any]] = []
    answer = await _ask(_shim(dialect, seen), connect)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "context_length_exceeded",
        "input",
    )
    assert len(seen) == 1  # not retried (Ollama's 500 included)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dialect", sorted(VENDORS))
async def test_auto_drops_oldest_whole_turns_and_completes(
    dialect: str, stream: bool, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    seen: list[dict[str, Any]] = []
    answer = await _ask(_shim(dialect, seen), connect, truncation="auto", stream=stream)
    assert answer.status_code == 200, answer.text
    if stream:
        assert "response.completed" in answer.text
    else:
        assert answer.json()["status"] == "completed" and answer.json()["truncation"] == "auto"
    assert 2 <= len(seen) <= 4  # refused, then resent smaller (bounded)
    last = seen[-1]
    assert len(json.dumps(last["messages"])) <= LIMIT
    texts = _texts(last)
    assert texts[0] == SYSTEM and texts[-1] == "And the last question?"
    assert not any(t.startswith("Question 0:") for t in texts)  # the oldest turn went first
    # whole turns: every call kept has its output, every output its call
    calls = {c["id"] for m in last["messages"] for c in m.get("tool_calls") or ()}
    outputs = {m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"}
    assert calls == outputs and calls


async def test_context_window_trims_before_sending(connect: Callable[[Shim], httpx.AsyncClient]) -> None:
    seen: list[dict[str, Any]] = []
    answer = await _ask(_shim("llamacpp-server", seen, window=900), connect, truncation="auto")
    assert answer.status_code == 200, answer.text
    assert len(seen) == 1  # the estimate was enough: no refused request
    assert _texts(seen[0])[0] == SYSTEM


async def test_context_window_alone_does_not_trim_under_disabled(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    seen: list[dict[str, Any]] = []
    answer = await _ask(_shim("llamacpp-server", seen, window=900), connect)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "context_length_exceeded"


async def test_a_last_turn_too_long_for_the_context_stays_an_error(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    seen: list[dict[str, Any]] = []
    client = connect(_shim("openai", seen))
    answer = await client.post(
        "/v1/responses", json={"model": "m", "input": "word " * 2000, "truncation": "auto"}
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "context_length_exceeded"
    assert len(seen) == 1  # nothing to drop: not resent


async def test_auto_keeps_the_whole_history_in_the_store(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    """Trimming is about one upstream call: the stored chain keeps every item."""
    seen: list[dict[str, Any]] = []
    shim = _shim("openai", seen)
    first = await _ask(shim, connect, truncation="auto")
    client = connect(shim)
    items = await client.get(f"/v1/responses/{first.json()['id']}/input_items", params={"limit": 100})
    assert len(items.json()["data"]) == len(_history(12))


async def test_compaction_past_the_threshold(connect: Callable[[Shim], httpx.AsyncClient]) -> None:
    seen: list[dict[str, Any]] = []
    shim = _shim("openai", seen)
    client = connect(shim)
    first = await client.post("/v1/responses", json={"model": "m", "input": _history(3)})
    assert first.status_code == 200, first.text
    management = [{"type": "compaction", "compact_threshold": 200}]
    second = await client.post(
        "/v1/responses",
        json={
            "model": "m",
            "input": "Go on.",
            "previous_response_id": first.json()["id"],
            "context_management": management,
        },
    )
    assert second.status_code == 200, second.text
    summarise, turn = seen[-2], seen[-1]
    assert "compacting the conversation" in _texts(summarise)[-1]  # mappings/prompts/compaction.toml
    texts = _texts(turn)
    assert any(t.startswith("Summary of the earlier conversation") for t in texts)
    assert not any(m["role"] == "tool" for m in turn["messages"])  # the calls are in the summary now
    assert texts[-1] == "Go on."
    # a continuation starts from the compacted window (one upstream call, no new compaction)
    third = await client.post(
        "/v1/responses", json={"model": "m", "input": "More.", "previous_response_id": second.json()["id"]}
    )
    assert third.status_code == 200
    assert any(t.startswith("Summary of the earlier conversation") for t in _texts(seen[-1]))


async def test_below_the_threshold_nothing_is_compacted(connect: Callable[[Shim], httpx.AsyncClient]) -> None:
    seen: list[dict[str, Any]] = []
    client = connect(_shim("openai", seen))
    management = [{"type": "compaction", "compact_threshold": 100000}]
    answer = await client.post(
        "/v1/responses", json={"model": "m", "input": _history(2), "context_management": management}
    )
    assert answer.status_code == 200 and len(seen) == 1


@pytest.mark.parametrize(
    ("management", "param"),
    [
        ({"type": "compaction"}, "context_management"),
        ([{"type": "summary", "compact_threshold": 5}], "context_management[0].type"),
        ([{"type": "compaction", "compact_threshold": 0}], "context_management[0].compact_threshold"),
        ([{"type": "compaction", "compact_threshold": 5, "x": 1}], "context_management[0]"),
    ],
)
async def test_bad_context_management_is_a_400_naming_it(
    management: Any, param: str, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    seen: list[dict[str, Any]] = []
    client = connect(_shim("openai", seen))
    answer = await client.post(
        "/v1/responses", json={"model": "m", "input": _history(1), "context_management": management}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param
    assert seen == []


async def test_auto_in_a_background_turn(connect: Callable[[Shim], httpx.AsyncClient]) -> None:
    seen: list[dict[str, Any]] = []
    shim = _shim("llamacpp-server", seen)
    queued = await _ask(shim, connect, truncation="auto", background=True)
    assert queued.status_code == 200 and queued.json()["status"] == "queued", queued.text
    client = connect(shim)
    for _ in range(200):
        final = (await client.get(f"/v1/responses/{queued.json()['id']}")).json()
        if final["status"] not in ("queued", "in_progress"):
            break
        await asyncio.sleep(0.02)
    assert final["status"] == "completed", final
    assert len(seen) >= 2 and len(json.dumps(seen[-1]["messages"])) <= LIMIT


def test_auto_and_disabled_over_websocket() -> None:
    seen: list[dict[str, Any]] = []
    shim = _shim("llamacpp-server", seen)
    with TestClient(app=shim.app) as http, http.websocket_connect("/v1/responses") as ws:
        frames = []
        for truncation in ("disabled", "auto"):
            body = {"type": "response.create", "model": "m", "input": _history(12), "truncation": truncation}
            ws.send_text(json.dumps(body))
            frame = json.loads(ws.receive_text())
            while frame["type"] not in ("error", "response.completed", "response.failed"):
                frame = json.loads(ws.receive_text())
            frames.append(frame)
    refused, answered = frames
    assert refused["type"] == "error" and refused["status"] == 400
    assert refused["error"]["code"] == "context_length_exceeded"
    assert answered["type"] == "response.completed"


@pytest.mark.parametrize("dialect", sorted(VENDORS))
async def test_chat_clients_get_the_same_error(
    dialect: str, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    """A Chat client passed through to the same upstream sees the same one error."""
    seen: list[dict[str, Any]] = []
    client = connect(_shim(dialect, seen))
    messages = [{"role": "user", "content": "word " * 2000}]
    answer = await client.post("/v1/chat/completions", json={"model": "m", "messages": messages})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")  # what it sent


@pytest.mark.parametrize("stream", [False, True])
async def test_chat_over_a_responses_upstream_names_messages(
    stream: bool, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    """A Chat client over a Responses upstream sent ``messages``, not ``input``."""
    status, error = _overflow(VENDORS["openai"])
    route = Route(upstream=UPSTREAM_URL, kind="responses", dialect="openai")
    client = connect(build_shim(target=status_app(status, error), routes=(route,)))
    messages = [{"role": "user", "content": "word " * 20}]
    answer = await client.post(
        "/v1/chat/completions", json={"model": "m", "messages": messages, "stream": stream}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "messages"


# -- context_management: the compaction item is output, and the window starts at it ----------------

THRESHOLD = [{"type": "compaction", "compact_threshold": 600}]  # the first window is ~950
_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def _summarising(seen: list[dict[str, Any]]) -> int:
    """How many upstream calls were compactions (mappings/prompts/compaction.toml's prompt)."""
    return sum("compacting the conversation" in _texts(request)[-1] for request in seen)


def _sse(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


async def test_a_conversation_past_the_threshold_compacts_once(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    seen: list[dict[str, Any]] = []
    client = connect(_shim("openai", seen))
    conversation = (await client.post("/v1/conversations", json={})).json()["id"]
    turns: list[str | list[dict[str, Any]]] = [
        _history(3),
        "Turn one.",
        "Turn two.",
        "Turn three.",
        "Turn four.",
    ]
    for text in turns:
        answer = await client.post(
            "/v1/responses",
            json={"model": "m", "input": text, "conversation": conversation, "context_management": THRESHOLD},
        )
        assert answer.status_code == 200, answer.text
        Response.model_validate(answer.json())
        last = seen[-1]
        assert any(t.startswith("Summary of the earlier conversation") for t in _texts(last))
        assert _texts(last)[0] == SYSTEM  # system messages stay, wherever the compaction starts
    assert _summarising(seen) == 1  # not one per turn
    assert len(seen) == len(turns) + 1
    items = (await client.get(f"/v1/conversations/{conversation}/items", params={"limit": 100})).json()
    assert [i["type"] for i in items["data"]].count("compaction") == 1


async def test_a_stateless_chain_sending_the_compaction_back_does_not_compact_again(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    seen: list[dict[str, Any]] = []
    client = connect(_shim("openai", seen))
    sent: list[dict[str, Any]] = _history(3)
    outputs = []
    for n in range(4):
        body = {"model": "m", "input": sent, "store": False, "context_management": THRESHOLD}
        answer = await client.post("/v1/responses", json=body)
        assert answer.status_code == 200, answer.text
        Response.model_validate(answer.json())
        outputs.append([i["type"] for i in answer.json()["output"]])
        sent = [*sent, *answer.json()["output"], {"role": "user", "content": f"Turn {n}."}]
        # what the compaction item stands for is not sent again
        assert not any(m["role"] == "tool" for m in seen[-1]["messages"])
        assert _texts(seen[-1])[-1] in ("And the last question?", f"Turn {n - 1}.")
    assert outputs[0] == ["compaction", "message"]  # the compaction item comes first
    assert outputs[1:] == [["message"]] * 3
    assert _summarising(seen) == 1


def _stream_checked(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events validate as openai-python's, numbered without a gap."""
    for event in events:
        _EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return [e for e in events if e["type"].startswith("response.output_item.")]


async def test_the_stream_carries_the_compaction_item_first(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    seen: list[dict[str, Any]] = []
    client = connect(_shim("openai", seen))
    body = {"model": "m", "input": _history(3), "stream": True, "context_management": THRESHOLD}
    answer = await client.post("/v1/responses", json=body)
    assert answer.status_code == 200, answer.text
    events = _sse(answer.text)
    items = _stream_checked(events)
    assert [(e["type"][21:], e["output_index"], e["item"]["type"]) for e in items] == [
        ("added", 0, "compaction"),
        ("done", 0, "compaction"),
        ("added", 1, "message"),
        ("done", 1, "message"),
    ]
    assert all(e.get("output_index", 1) >= 1 for e in events if "delta" in e["type"])
    final = Response.model_validate(events[-1]["response"])
    assert [i.type for i in final.output] == ["compaction", "message"]
    assert final.output[0].id == items[0]["item"]["id"]


def test_the_websocket_turn_carries_the_compaction_item() -> None:
    seen: list[dict[str, Any]] = []
    shim = _shim("openai", seen)
    with TestClient(app=shim.app) as http, http.websocket_connect("/v1/responses") as ws:
        answers = []
        for text in (_history(3), "Turn one.", "Turn two."):
            previous = {"previous_response_id": answers[-1][-1]["response"]["id"]} if answers else {}
            body = {"type": "response.create", "model": "m", "input": text, "context_management": THRESHOLD}
            ws.send_text(json.dumps({**body, **previous}))
            events = [json.loads(ws.receive_text())]
            while events[-1]["type"] not in ("error", "response.completed", "response.failed"):
                events.append(json.loads(ws.receive_text()))
            answers.append(events)
    first = _stream_checked(answers[0])
    assert [e["item"]["type"] for e in first] == ["compaction", "compaction", "message", "message"]
    assert [i["type"] for i in answers[-1][-1]["response"]["output"]] == ["message"]
    assert _summarising(seen) == 1


async def test_a_client_may_drop_what_comes_before_the_compaction_item(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    """OpenAI's advice: keep the latest compaction item and what follows. The item carries the
    turn's own question (it was not summarised), so nothing is lost."""
    seen: list[dict[str, Any]] = []
    client = connect(_shim("openai", seen))
    body = {"model": "m", "input": _history(3), "store": False, "context_management": THRESHOLD}
    first = (await client.post("/v1/responses", json=body)).json()
    kept = [*first["output"], {"role": "user", "content": "Next."}]
    answer = await client.post("/v1/responses", json={**body, "input": kept})
    assert answer.status_code == 200, answer.text
    texts = _texts(seen[-1])
    assert texts[0].startswith("Summary of the earlier conversation")
    assert texts[1:] == ["And the last question?", first["output"][1]["content"][0]["text"], "Next."]
    assert _summarising(seen) == 1

"""A store that fails after the upstream did the work never cuts the answer (issue 12, finding 7).

The client always gets a whole answer or a well-formed error: streamed Open Responses turns end
with ``error`` + ``response.failed`` (code ``store_unavailable``) and ``[DONE]``; whole ones are a
503 ``store_unavailable`` in the envelope. Chat turns over a Responses upstream only remember
reasoning for later turns, so their answer is delivered whole (docs/store.md, "Failures").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.http.state import app_state
from shim.settings import Route
from shim.store.failures import StoreUnavailable
from tests.server.harness import UPSTREAM_URL, Shim, parse_sse
from tests.support import scripted_chat
from tests.support.scripted_responses import ScriptedResponses

Connect = Callable[[Shim], httpx.AsyncClient]

ROUTES: dict[str, Callable[[], tuple[Any, Route]]] = {
    "responses-over-chat": lambda: (scripted_chat.app, Route(upstream=UPSTREAM_URL)),
    "responses-passthrough": lambda: (ScriptedResponses(), Route(upstream=UPSTREAM_URL, kind="responses")),
    # a JSON turn sent upstream streamed so that a client hanging up stops it, collected whole
    "responses-over-chat-cancel-json": lambda: (
        scripted_chat.app,
        Route(upstream=UPSTREAM_URL, dialect="llamacpp-python", cancel_json=True),
    ),
}


def _failing_writes(shim: Shim, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads work, every write fails: the store went away while the upstream was answering."""
    backend = app_state(shim.app).turns.store.backend

    async def down(*_: object, **__: object) -> None:
        raise StoreUnavailable("The response store is unavailable (redis: ConnectionError); try again later.")

    monkeypatch.setattr(backend, "set", down)


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
async def test_streamed_responses_end_with_a_failure_event(
    make_shim: Callable[..., Shim],
    connect: Connect,
    monkeypatch: pytest.MonkeyPatch,
    route: Callable[[], tuple[Any, Route]],
) -> None:
    target, config = route()
    shim = make_shim(target=target, routes=(config,))
    _failing_writes(shim, monkeypatch)
    answer = await connect(shim).post("/v1/responses", json={"model": "m", "input": "Hello", "stream": True})
    assert answer.status_code == 200
    pairs, _ = parse_sse(answer.text)  # every block whole, ``[DONE]`` last when the route sends one
    events = [json.loads(data) for _, data in pairs]
    kinds = [event["type"] for event in events]
    assert kinds[-2:] == ["error", "response.failed"], kinds
    assert "response.completed" not in kinds, "the client must not be told an unstored answer is stored"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "store_unavailable"
    assert events[-2]["error"]["code"] == "store_unavailable"
    numbers = [event["sequence_number"] for event in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
async def test_whole_responses_are_a_503_in_the_envelope(
    make_shim: Callable[..., Shim],
    connect: Connect,
    monkeypatch: pytest.MonkeyPatch,
    route: Callable[[], tuple[Any, Route]],
) -> None:
    target, config = route()
    shim = make_shim(target=target, routes=(config,))
    _failing_writes(shim, monkeypatch)
    answer = await connect(shim).post("/v1/responses", json={"model": "m", "input": "Hello"})
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "store_unavailable"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_chat_answers_are_whole_when_reasoning_cannot_be_remembered(
    make_shim: Callable[..., Shim], connect: Connect, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    upstream = ScriptedResponses(reasoning=["Let me ", "think."])
    shim = make_shim(target=upstream, routes=(Route(upstream=UPSTREAM_URL, kind="responses"),))
    _failing_writes(shim, monkeypatch)
    body = {"model": "m", "messages": [{"role": "user", "content": "Hello"}], "stream": stream}
    answer = await connect(shim).post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    if stream:
        assert answer.text.endswith("data: [DONE]\n\n"), answer.text[-300:]
        chunks = [json.loads(b.removeprefix("data: ")) for b in answer.text.split("\n\n")[:-2] if b]
        assert not any("error" in chunk for chunk in chunks)
        assert [c["finish_reason"] for ch in chunks for c in ch["choices"] if c["finish_reason"]] == ["stop"]
    else:
        assert answer.json()["choices"][0]["finish_reason"] == "stop"

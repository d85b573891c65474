"""Stored and sealed reasoning across a failover (``shim/upstream/families.py``).

Two Chat upstreams behind one route, ``a`` (the route's own, dialect ``vllm``) and ``b`` (its
fallback, ``ollama``, or ``nim`` — of the ``vllm`` family — for a one-family route). Both dialects
replay reasoning in a ``reasoning`` message field. Each upstream thinks ``thought-<host>``; a row
switches ``a`` off (503) for some turns and says which thoughts each upstream was sent.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shim.settings import Fallback, Route
from tests.server.harness import build_shim
from tests.support.scripted_responses import ScriptedResponses


class _Once(httpx.AsyncByteStream):
    """A body read once, as from a socket (``httpx.Response(json=...)`` comes already read)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = json.dumps(data).encode()

    async def __aiter__(self) -> Any:
        yield self.data


def _json(status: int, data: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "application/json"}, stream=_Once(data))


class Pair:
    """Upstreams ``a`` and ``b`` on one mock transport: ``a_down`` makes ``a`` answer 503."""

    def __init__(self) -> None:
        self.a_down = False
        self.sent: list[tuple[str, dict[str, Any]]] = []  # (host, body) of every request

    def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        body = json.loads(request.content)
        self.sent.append((host, body))
        if host == "a" and self.a_down:
            return _json(503, {"error": {"message": "a is down"}})
        message = {"role": "assistant", "reasoning": f"thought-{host}", "content": f"answer from {host}"}
        return _json(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )

    def thoughts_sent(self, host: str) -> list[str]:
        """The reasoning replayed in the last request ``host`` received."""
        body = [b for h, b in self.sent if h == host][-1]
        return [m["reasoning"] for m in body["messages"] if m.get("reasoning")]


def _shim(pair: Pair, fallback_dialect: str) -> Any:
    route = Route(
        upstream="http://a/v1",
        dialect="vllm",
        fallbacks=(Fallback(upstream="http://b/v1", dialect=fallback_dialect),),
    )
    return build_shim(target=httpx.MockTransport(pair.handle), routes=(route,))


async def _turn(shim: Any, pair: Pair | ResponsesPair, a_down: bool, **body: Any) -> httpx.Response:
    pair.a_down = a_down
    async with httpx.AsyncClient(transport=httpx.ASGITransport(shim.app), base_url="http://shim") as client:
        response = await client.post("/v1/responses", json={"model": "m", **body})
    assert response.status_code == 200, response.text
    return response


async def test_stored_reasoning_goes_back_only_to_its_family() -> None:
    pair = Pair()
    shim = _shim(pair, "ollama")
    one = await _turn(shim, pair, False, input="one")
    assert "x-shim-diagnostics" not in one.headers
    two = await _turn(shim, pair, True, input="two", previous_response_id=one.json()["id"])
    assert pair.thoughts_sent("a") == ["thought-a"], "a's own reasoning went to a (which failed)"
    assert pair.thoughts_sent("b") == [], "b is another family: a's reasoning is not sent to it"
    assert two.headers["x-shim-diagnostics"] == "unsupported_item:previous_response_id"
    assert two.json()["output"][-1]["content"][0]["text"] == "answer from b"
    three = await _turn(shim, pair, False, input="three", previous_response_id=two.json()["id"])
    assert pair.thoughts_sent("a") == ["thought-a"], "a is back: its own reasoning, not b's"
    assert three.headers["x-shim-diagnostics"] == "unsupported_item:previous_response_id"


async def test_sealed_reasoning_goes_back_only_to_its_family() -> None:
    """A stateless client (store false, encrypted reasoning) brings the items back itself."""
    pair = Pair()
    shim = _shim(pair, "ollama")
    stateless = {"store": False, "include": ["reasoning.encrypted_content"]}
    one = await _turn(shim, pair, False, input="one", **stateless)
    output = one.json()["output"]
    assert output[0]["type"] == "reasoning" and output[0]["encrypted_content"].startswith("shim1.")
    history = [{"role": "user", "content": "one"}, *output, {"role": "user", "content": "two"}]
    two = await _turn(shim, pair, True, input=history, **stateless)
    assert pair.thoughts_sent("a") == ["thought-a"]
    assert pair.thoughts_sent("b") == []
    assert two.headers["x-shim-diagnostics"] == "unsupported_item:input[1]"
    again = [*history, *two.json()["output"], {"role": "user", "content": "three"}]
    await _turn(shim, pair, False, input=again, **stateless)
    assert pair.thoughts_sent("a") == ["thought-a"], "b's sealed reasoning stays away from a"


@pytest.mark.parametrize("stateless", [False, True], ids=["stored", "sealed"])
async def test_one_family_route_replays_everything(stateless: bool) -> None:
    """``nim`` extends ``vllm``: one family, so b gets a's reasoning, with no diagnostic."""
    pair = Pair()
    shim = _shim(pair, "nim")
    extra: dict[str, Any] = {"store": False, "include": ["reasoning.encrypted_content"]} if stateless else {}
    one = await _turn(shim, pair, False, input="one", **extra)
    if stateless:
        follow: dict[str, Any] = {
            "input": [
                {"role": "user", "content": "one"},
                *one.json()["output"],
                {"role": "user", "content": "two"},
            ]
        }
    else:
        follow = {"input": "two", "previous_response_id": one.json()["id"]}
    two = await _turn(shim, pair, True, **follow, **extra)
    assert pair.thoughts_sent("b") == ["thought-a"]
    assert "x-shim-diagnostics" not in two.headers


async def test_error_policy_does_not_refuse_a_failover() -> None:
    """Dropping reasoning is the shim's choice: reported, never a 400, under ``error`` too."""
    pair = Pair()
    route = Route(
        upstream="http://a/v1",
        dialect="vllm",
        fallbacks=(Fallback(upstream="http://b/v1", dialect="ollama"),),
    )
    shim = build_shim(target=httpx.MockTransport(pair.handle), routes=(route,), diagnostics="error")
    one = await _turn(shim, pair, False, input="one")
    two = await _turn(shim, pair, True, input="two", previous_response_id=one.json()["id"])
    assert two.headers["x-shim-diagnostics"] == "unsupported_item:previous_response_id"


class ResponsesPair(httpx.AsyncBaseTransport):
    """Two scripted Responses upstreams, ``a`` and ``b``, each answering with a reasoning item
    carrying its own opaque ``encrypted_content`` (``enc:1``… from a, ``enc:101``… from b)."""

    def __init__(self) -> None:
        self.a_down = False
        self.apps = {"a": ScriptedResponses(reasoning=["think"]), "b": ScriptedResponses(reasoning=["think"])}
        self.apps["b"].turn = 100  # vendors' item ids never collide
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.sent.append((host, json.loads(await request.aread())))
        if host == "a" and self.a_down:
            return _json(503, {"error": {"message": "a is down"}})
        return await httpx.ASGITransport(self.apps[host]).handle_async_request(request)

    def blobs_sent(self, host: str) -> list[str]:
        body = [b for h, b in self.sent if h == host][-1]
        return [i["encrypted_content"] for i in body["input"] if i.get("type") == "reasoning"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_vendor_reasoning_blobs_go_back_only_to_their_family(stream: bool) -> None:
    """A stateless Responses upstream's route: the shim expands the chain and must not hand one
    vendor's encrypted reasoning to another (a 400 that would poison the thread)."""
    pair = ResponsesPair()
    route = Route(
        upstream="http://a/v1",
        kind="responses",
        fallbacks=(Fallback(upstream="http://b/v1", dialect="ollama"),),
    )
    shim = build_shim(target=pair, routes=(route,))

    async def turn(a_down: bool, **body: Any) -> str:
        pair.a_down = a_down
        response = await _turn(shim, pair, a_down, stream=stream, **body)
        if not stream:
            return str(response.json()["id"])
        created = next(line for line in response.text.splitlines() if '"response.created"' in line)
        return str(json.loads(created.removeprefix("data: "))["response"]["id"])

    one = await turn(False, input="one")
    two = await turn(True, input="two", previous_response_id=one)
    assert pair.blobs_sent("a") == ["enc:1"]
    assert pair.blobs_sent("b") == [], "a's blob is not b's to open"
    await turn(False, input="three", previous_response_id=two)
    assert pair.blobs_sent("a") == ["enc:1"], "nor b's blob a's"


async def test_remembered_reasoning_of_chat_clients_goes_back_only_to_its_family() -> None:
    """A Chat client over a Responses route: the shim remembers each answer's reasoning and puts
    it back when the message returns (``reasoning_memory``), only to the family that made it."""
    pair = ResponsesPair()
    route = Route(
        upstream="http://a/v1",
        kind="responses",
        fallbacks=(Fallback(upstream="http://b/v1", dialect="ollama"),),
    )
    shim = build_shim(target=pair, routes=(route,))
    messages: list[dict[str, Any]] = []

    async def say(text: str, a_down: bool) -> httpx.Response:
        pair.a_down = a_down
        messages.append({"role": "user", "content": text})
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(shim.app), base_url="http://shim"
        ) as client:
            response = await client.post("/v1/chat/completions", json={"model": "m", "messages": messages})
        assert response.status_code == 200, response.text
        messages.append({"role": "assistant", "content": response.json()["choices"][0]["message"]["content"]})
        return response

    await say("one", False)
    two = await say("two", True)
    assert pair.blobs_sent("a") == ["enc:1"]
    assert pair.blobs_sent("b") == []
    assert two.headers["x-shim-diagnostics"] == "unsupported_item:messages[1]"
    await say("three", False)
    assert pair.blobs_sent("a") == ["enc:1"], "b's reasoning stays away from a"

"""Route settings for small local models, and an upstream that cannot stream a tool choice.

- ``max_output_tokens`` and ``temperature``: for requests that send none (Codex sends neither;
  servers' own defaults differ).
- ``stop``: stop sequences for requests that send none (a base model rarely ends a turn).
- ``max_tool_rounds``: the loop guard. After that many rounds of calls since the last user
  message the upstream gets ``tool_choice: "none"`` and must answer.
- a dialect with ``stream_auto_tool_choice = false`` (llama-cpp-python's
  ``chatml-function-calling``): a streamed request offering tools with ``auto`` goes upstream
  unstreamed and the whole answer reaches the client as a proper event stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.settings import Route
from tests.checks.lifecycle import check_lifecycle
from tests.checks.oracle import validate_event
from tests.server.harness import UPSTREAM_URL, Shim, parse_sse
from tests.support import scripted_chat
from tests.support.scripted_asgi import read_body

TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
FUNCTIONS_DIALECT = "llamacpp-python-functions"


def _call(n: int) -> list[dict[str, Any]]:
    """One round: the model's call and the client's output for it."""
    return [
        {"type": "function_call", "call_id": f"call_{n}", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": f"call_{n}", "output": "sunny"},
    ]


USER = {"role": "user", "content": "Weather?"}

STOP_CASES = [
    # (route stop, loop guard, request extras, stop sent upstream)
    pytest.param(("\n",), None, {}, ["\n"], id="route-default-applies"),
    pytest.param(("\n",), None, {"stop": ["END"]}, ["END"], id="client-stop-wins"),
    pytest.param((), None, {}, None, id="no-default"),
    # A stop sequence inside a call's arguments would cut their JSON: only text answers get it.
    pytest.param(("\n",), None, {"tools": [TOOL]}, None, id="not-while-the-model-may-call"),
    pytest.param(("\n",), None, {"tools": [TOOL], "tool_choice": "none"}, ["\n"], id="tool-choice-none"),
    pytest.param(("\n",), 0, {"tools": [TOOL]}, ["\n"], id="loop-guard-makes-it-text"),
]


@pytest.mark.parametrize(("route_stop", "rounds", "extra", "sent"), STOP_CASES)
async def test_route_stop(
    make_shim: Callable[..., Shim],
    connect: Callable[[Shim], httpx.AsyncClient],
    route_stop: tuple[str, ...],
    rounds: int | None,
    extra: dict[str, Any],
    sent: list[str] | None,
) -> None:
    shim = make_shim(routes=(Route(upstream=UPSTREAM_URL, stop=route_stop, max_tool_rounds=rounds),))
    body: dict[str, Any] = {"model": "m", "input": "Hello", **extra}
    resp = await connect(shim).post("/v1/responses", json=body)
    assert resp.status_code == 200, resp.text
    (upstream,) = shim.upstream.bodies
    assert upstream.get("stop") == sent


DEFAULT_CASES = [
    # (setting, upstream field, route default, client's value, sent upstream, status)
    pytest.param(
        "max_output_tokens", "max_completion_tokens", 5, None, 5, "incomplete", id="limit-route-default"
    ),
    pytest.param(
        "max_output_tokens", "max_completion_tokens", 5, 400, 400, "completed", id="limit-client-wins"
    ),
    pytest.param(
        "max_output_tokens", "max_completion_tokens", None, None, None, "completed", id="limit-none"
    ),
    pytest.param("temperature", "temperature", 0.0, None, 0.0, "completed", id="temperature-route-default"),
    pytest.param("temperature", "temperature", 0.0, 0.7, 0.7, "completed", id="temperature-client-wins"),
    pytest.param("temperature", "temperature", None, None, None, "completed", id="temperature-none"),
]


@pytest.mark.parametrize(("setting", "field", "default", "client", "sent", "status"), DEFAULT_CASES)
async def test_route_default_for_requests_that_set_none(
    make_shim: Callable[..., Shim],
    connect: Callable[[Shim], httpx.AsyncClient],
    setting: str,
    field: str,
    default: float | None,
    client: float | None,
    sent: float | None,
    status: str,
) -> None:
    """A route's ``max_output_tokens`` (Codex never sends a limit, and a llama.cpp server then
    generates until its context is full) and ``temperature``: a client's own value always wins,
    and the response echoes what was used."""
    shim = make_shim(routes=(Route(upstream=UPSTREAM_URL, **{setting: default}),))
    body: dict[str, Any] = {"model": "m", "input": "Hello"}
    if client is not None:
        body[setting] = client
    resp = await connect(shim).post("/v1/responses", json=body)
    assert resp.status_code == 200, resp.text
    (upstream,) = shim.upstream.bodies
    assert upstream.get(field) == sent
    payload = resp.json()
    assert payload["status"] == status
    if setting == "max_output_tokens" or sent is not None:
        assert payload[setting] == sent


GUARD_CASES = [
    # (max_tool_rounds, input items, tool_choice sent upstream, output item type)
    pytest.param(1, [USER], "auto", "function_call", id="first-round-may-call"),
    pytest.param(1, [USER, *_call(1)], "none", "message", id="after-one-round-answers"),
    pytest.param(2, [USER, *_call(1)], "auto", "function_call", id="second-round-allowed"),
    pytest.param(2, [USER, *_call(1), *_call(2)], "none", "message", id="after-two-rounds"),
    pytest.param(1, [USER, *_call(1), USER], "auto", "function_call", id="a-new-user-turn-resets"),
    pytest.param(0, [USER], "none", "message", id="zero-means-never-call"),
    pytest.param(None, [USER, *_call(1), *_call(2)], "auto", "function_call", id="unset-no-guard"),
]


@pytest.mark.parametrize(("rounds", "items", "sent", "output"), GUARD_CASES)
async def test_loop_guard(
    make_shim: Callable[..., Shim],
    connect: Callable[[Shim], httpx.AsyncClient],
    rounds: int | None,
    items: list[dict[str, Any]],
    sent: str,
    output: str,
) -> None:
    """The guard is judged by the ``tool_choice`` sent upstream. The scripted model answers in
    text after a tool result anyway, so its output tells only when no result is pending."""
    shim = make_shim(routes=(Route(upstream=UPSTREAM_URL, max_tool_rounds=rounds),))
    body = {"model": "m", "input": items, "tools": [TOOL], "tool_choice": "auto"}
    resp = await connect(shim).post("/v1/responses", json=body)
    assert resp.status_code == 200, resp.text
    (upstream,) = shim.upstream.bodies
    assert upstream["tool_choice"] == sent
    if sent == "none" or items[-1] == USER:
        assert resp.json()["output"][-1]["type"] == output


async def test_loop_guard_counts_stored_history(
    make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    """Rounds made earlier in a ``previous_response_id`` chain count too."""
    shim = make_shim(routes=(Route(upstream=UPSTREAM_URL, max_tool_rounds=1),))
    client = connect(shim)
    first = await client.post("/v1/responses", json={"model": "m", "input": "Weather?", "tools": [TOOL]})
    call = first.json()["output"][-1]
    assert call["type"] == "function_call"
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    body = {"model": "m", "input": [output], "tools": [TOOL], "previous_response_id": first.json()["id"]}
    second = await client.post("/v1/responses", json=body)
    assert second.status_code == 200, second.text
    assert [b.get("tool_choice") for b in shim.upstream.bodies] == [None, "none"]
    assert second.json()["output"][-1]["type"] == "message"


def _stream_events(text: str) -> list[dict[str, Any]]:
    pairs, _ = parse_sse(text)
    for _, data in pairs:
        validate_event(data)
    events = [json.loads(data) for _, data in pairs]
    assert [e["type"] for e in events] == [name for name, _ in pairs]
    check_lifecycle(events)
    return events


REPLAY_CASES = [
    # (request extras, upstream streamed?, output item type)
    pytest.param({"tools": [TOOL], "tool_choice": "auto"}, False, "function_call", id="auto-unstreamed"),
    pytest.param({"tools": [TOOL]}, False, "function_call", id="default-choice-is-auto"),
    pytest.param({"tools": [TOOL], "tool_choice": "none"}, True, "message", id="none-streams"),
    pytest.param(
        {"tools": [TOOL], "tool_choice": {"type": "function", "name": "get_weather"}},
        True,
        "function_call",
        id="forced-streams",
    ),
    pytest.param({}, True, "message", id="no-tools-streams"),
]


@pytest.mark.parametrize(("extra", "streamed", "output"), REPLAY_CASES)
async def test_unstreamable_tool_choice_is_replayed_as_a_stream(
    make_shim: Callable[..., Shim],
    connect: Callable[[Shim], httpx.AsyncClient],
    extra: dict[str, Any],
    streamed: bool,
    output: str,
) -> None:
    shim = make_shim(dialect=FUNCTIONS_DIALECT)
    body = {"model": "m", "input": "Weather in Paris?", "stream": True, **extra}
    resp = await connect(shim).post("/v1/responses", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    (upstream,) = shim.upstream.bodies
    assert bool(upstream.get("stream")) is streamed
    assert ("stream_options" in upstream) is streamed
    if "tools" in extra:
        assert upstream["tool_choice"] is not None
    events = _stream_events(resp.text)
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert [item["type"] for item in final["output"]] == [output]
    if output == "message":
        assert final["output"][0]["content"][0]["text"].startswith(scripted_chat.ANSWER.split()[0])


async def test_unstreamed_answer_that_is_no_completion_fails_the_stream(
    make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    async def not_a_completion(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"this is not json"})

    shim = make_shim(dialect=FUNCTIONS_DIALECT, target=not_a_completion)
    body = {"model": "m", "input": "Hi", "stream": True, "tools": [TOOL]}
    resp = await connect(shim).post("/v1/responses", json=body)
    assert resp.status_code == 200
    events = _stream_events(resp.text)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["error"]["code"] == "upstream_invalid_response"


CANCEL_JSON_CASES = [
    # (dialect, route cancel_json, request extras, upstream request streamed)
    pytest.param("llamacpp-python", True, {}, True, id="stream-to-cancel-dialect"),
    pytest.param("llamacpp-python", False, {}, None, id="off-keeps-usage"),
    pytest.param("openai", True, {}, None, id="upstream-stops-unstreamed-work-itself"),
    # a dialect that cannot stream tools + auto still gets them unstreamed
    pytest.param(FUNCTIONS_DIALECT, True, {"tools": [TOOL]}, None, id="functions-tool-choice-auto"),
    pytest.param(FUNCTIONS_DIALECT, True, {}, True, id="functions-text"),
]


@pytest.mark.parametrize(("dialect", "cancel_json", "extra", "streamed"), CANCEL_JSON_CASES)
async def test_cancel_json_sends_json_turns_streamed(
    make_shim: Callable[..., Shim],
    connect: Callable[[Shim], httpx.AsyncClient],
    dialect: str,
    cancel_json: bool,
    extra: dict[str, Any],
    streamed: bool | None,
) -> None:
    """``Route.cancel_json``: a JSON turn goes upstream streamed (collected into the same JSON
    answer) where the dialect stops only streamed work, so that a client hanging up stops it."""
    shim = make_shim(routes=(Route(upstream=UPSTREAM_URL, dialect=dialect, cancel_json=cancel_json),))
    resp = await connect(shim).post("/v1/responses", json={"model": "m", "input": "Hello", **extra})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "completed", resp.json()
    (upstream,) = shim.upstream.bodies
    assert upstream.get("stream") is streamed


OVERFLOW = (
    Path(__file__).parents[2] / "fixtures/responses_over_chat/llamacpp/error_context_overflow/upstream.json"
)


def _refuses_streams_silently(requests: list[dict[str, Any]]) -> Any:
    """llama-cpp-python on a context overflow (recorded): a stream is an empty 200, the same
    request unstreamed a 400 that says why."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = json.loads(await read_body(receive))
        requests.append(body)
        streamed = bool(body.get("stream"))
        status, kind = (200, b"text/event-stream") if streamed else (400, b"application/json")
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": b"" if streamed else OVERFLOW.read_bytes()})

    return app


async def test_cancel_json_overflow_still_says_context_length_exceeded(
    make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    """A JSON turn sent streamed (``cancel_json``) that the upstream answers with an empty stream
    is asked again unstreamed, so the client gets the upstream's reason, not a truncated stream."""
    shim = make_shim(routes=(Route(upstream=UPSTREAM_URL, dialect="llamacpp-python", cancel_json=True),))
    requests: list[dict[str, Any]] = []
    shim.upstream.use(_refuses_streams_silently(requests))
    resp = await connect(shim).post("/v1/responses", json={"model": "m", "input": "a long story"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "context_length_exceeded"
    assert [bool(r.get("stream")) for r in requests] == [True, False]

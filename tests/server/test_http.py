"""HTTP: ``POST /v1/responses`` (JSON and SSE), chaining, errors, auth, models, health — in-process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.settings import Route, Timeouts
from tests.checks.lifecycle import check_lifecycle
from tests.checks.oracle import validate_event, validate_resource
from tests.server.harness import (
    UPSTREAM_URL,
    Shim,
    asgi_post,
    broken_stream,
    parse_sse,
    reasoning_app,
    refused,
    slow_app,
    stalling_stream,
    status_app,
    text_of,
    truncated_app,
)
from tests.support import scripted_chat

Connect = Callable[[Shim], httpx.AsyncClient]
MakeShim = Callable[..., Shim]

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    """Check the SSE framing of a whole response and return its events (each validated by the oracle)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    text = response.text
    assert "\r" not in text, "LF line endings only"
    assert not any(line.startswith("id:") for line in text.split("\n")), "no id: lines"
    assert text.endswith("\n\ndata: [DONE]\n\n"), text[-200:]
    assert text.count("data: [DONE]") == 1
    pairs, _ = parse_sse(text)
    events = []
    for name, data in pairs:
        validate_event(data)
        event = json.loads(data)
        assert event["type"] == name, "event: line must equal the data's type"
        events.append(event)
    return events


def resource_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    validate_resource(response.content)
    data: dict[str, Any] = response.json()
    return data


async def create(client: httpx.AsyncClient, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """One turn; the final resource, whichever the transport."""
    response = await client.post("/v1/responses", json={**body, "stream": stream})
    if not stream:
        return resource_of(response)
    events = sse_events(response)
    check_lifecycle(events)
    final: dict[str, Any] = events[-1]["response"]
    return final


# --------------------------------------------------------------------------- happy paths

HAPPY = [
    pytest.param({"input": "Hello there"}, "completed", ["message"], id="string-input"),
    pytest.param(
        {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}]},
        "completed",
        ["message"],
        id="message-list",
    ),
    pytest.param(
        {"input": [{"role": "user", "content": "Hi"}], "instructions": "Be terse."},
        "completed",
        ["message"],
        id="untyped-message-and-instructions",
    ),
    pytest.param(
        {"input": "Weather in Paris?", "tools": [WEATHER_TOOL]},
        "completed",
        ["function_call"],
        id="function-call",
    ),
    pytest.param({"input": "Hello", "max_output_tokens": 3}, "incomplete", ["message"], id="token-budget"),
    pytest.param(
        {"input": "Hello", "temperature": 0.2, "top_p": 0.5, "metadata": {"k": "v"}},
        "completed",
        ["message"],
        id="sampling-echo",
    ),
]


@pytest.mark.parametrize(("body", "status", "types"), HAPPY)
async def test_json_response(
    client: httpx.AsyncClient, body: dict[str, Any], status: str, types: list[str]
) -> None:
    resource = resource_of(await client.post("/v1/responses", json={"model": "m", **body}))
    assert resource["status"] == status
    assert [item["type"] for item in resource["output"]] == types
    assert resource["model"] == "m"
    for name in ("temperature", "top_p", "metadata"):
        if name in body:
            assert resource[name] == body[name]


@pytest.mark.parametrize(("body", "status", "types"), HAPPY)
async def test_sse_response(
    client: httpx.AsyncClient, body: dict[str, Any], status: str, types: list[str]
) -> None:
    response = await client.post("/v1/responses", json={"model": "m", "stream": True, **body})
    events = sse_events(response)
    check_lifecycle(events)
    final = events[-1]["response"]
    assert final["status"] == status
    assert [item["type"] for item in final["output"]] == types
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_text_matches_upstream(client: httpx.AsyncClient, shim: Shim, stream: bool) -> None:
    resource = await create(client, {"model": "m", "input": "ping"}, stream=stream)
    text = resource["output"][0]["content"][0]["text"]
    assert text == f"{scripted_chat.ANSWER} You said: ping"
    sent = shim.upstream.bodies[-1]
    assert sent["model"] == "m"
    assert [(m["role"], text_of(m)) for m in sent["messages"]] == [("user", "ping")]
    assert bool(sent.get("stream")) is stream


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_reasoning_then_text(make_shim: MakeShim, connect: Connect, stream: bool) -> None:
    shim = make_shim(target=reasoning_app(["Let me ", "think."], ["Four", "."]), dialect="deepseek")
    client = connect(shim)
    first = await create(client, {"model": "m", "input": "2+2?"}, stream=stream)
    assert [item["type"] for item in first["output"]] == ["reasoning", "message"]
    assert first["output"][1]["content"][0]["text"] == "Four."
    assert "Let me think." in json.dumps(first["output"][0])
    assert first["usage"]["total_tokens"] == 12
    second = await create(
        client, {"model": "m", "input": "And 3+3?", "previous_response_id": first["id"]}, stream=stream
    )
    assert second["status"] == "completed"
    roles = [m["role"] for m in shim.upstream.bodies[-1]["messages"]]
    assert roles == ["user", "assistant", "user"], "the reasoning item folds into the assistant turn"


# --------------------------------------------------------------------------- previous_response_id


@pytest.mark.parametrize(
    ("first_stream", "second_stream"),
    [(False, False), (True, True), (False, True), (True, False)],
    ids=["json-json", "sse-sse", "json-sse", "sse-json"],
)
async def test_previous_response_chain(
    client: httpx.AsyncClient, shim: Shim, first_stream: bool, second_stream: bool
) -> None:
    first = await create(
        client,
        {"model": "m", "input": "first question", "instructions": "Be terse."},
        stream=first_stream,
    )
    answer = first["output"][0]["content"][0]["text"]
    second = await create(
        client,
        {"model": "m", "input": "second question", "previous_response_id": first["id"]},
        stream=second_stream,
    )
    assert second["previous_response_id"] == first["id"]
    assert second["instructions"] is None
    assert second["id"] != first["id"]
    messages = shim.upstream.bodies[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"], "instructions are not inherited"
    assert [text_of(m) for m in messages] == ["first question", answer, "second question"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_function_call_round_trip(client: httpx.AsyncClient, shim: Shim, stream: bool) -> None:
    first = await create(
        client, {"model": "m", "input": "Weather in Paris?", "tools": [WEATHER_TOOL]}, stream=stream
    )
    (call,) = first["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "San Francisco"}
    second = await create(
        client,
        {
            "model": "m",
            "previous_response_id": first["id"],
            "tools": [WEATHER_TOOL],
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"}],
        },
        stream=stream,
    )
    assert [i["type"] for i in second["output"]] == ["message"]
    messages = shim.upstream.bodies[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call["call_id"]
    assert messages[2]["tool_call_id"] == call["call_id"]
    assert text_of(messages[2]) == "Sunny"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_store_false_is_not_continuable(client: httpx.AsyncClient, shim: Shim, stream: bool) -> None:
    first = await create(client, {"model": "m", "input": "hi", "store": False}, stream=stream)
    assert first["store"] is False
    response = await client.post(
        "/v1/responses",
        json={"model": "m", "input": "again", "previous_response_id": first["id"], "stream": stream},
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "previous_response_not_found"
    assert error["param"] == "previous_response_id"
    assert len(shim.upstream.requests) == 1, "the failed continuation never reached the upstream"


async def test_previous_response_is_scoped_to_the_caller(client: httpx.AsyncClient) -> None:
    first = resource_of(
        await client.post(
            "/v1/responses", json={"model": "m", "input": "hi"}, headers={"authorization": "Bearer alice"}
        )
    )
    response = await client.post(
        "/v1/responses",
        json={"model": "m", "input": "again", "previous_response_id": first["id"]},
        headers={"authorization": "Bearer mallory"},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "previous_response_not_found"


# --------------------------------------------------------------------------- errors


def envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.headers
    data = response.json()
    assert set(data) == {"error"}
    assert set(data["error"]) == {"message", "type", "param", "code"}
    assert isinstance(data["error"]["message"], str) and data["error"]["message"]
    error: dict[str, Any] = data["error"]
    return error


REQUEST_ERRORS = [
    pytest.param(b'{"model": "m", "input": ', 400, "invalid_json", None, id="invalid-json"),
    pytest.param(b"[1, 2]", 400, "invalid_type", None, id="not-an-object"),
    pytest.param(
        {"model": "m", "input": [{"type": "message", "role": "user", "content": 5}]},
        400,
        "invalid_value",
        "input[0].content",
        id="content-number",
    ),
    pytest.param(  # an item type the shim does not know is dropped, reported (never a 400 by
        # itself: tests/server/test_history_items.py); here nothing is left to send
        {"model": "m", "input": [{"type": "no_such_item", "role": "user"}]},
        400,
        "missing_input",
        "input",
        id="only-unknown-item-type",
    ),
    pytest.param(
        {"model": "m", "input": [{"type": "message", "content": "hi"}]},
        400,
        "invalid_value",
        "input[0].role",
        id="message-without-role",
    ),
    pytest.param(
        {"model": "m", "input": "hi", "tools": [{"type": "function", "parameters": {}}]},
        400,
        "invalid_value",
        "tools[0].name",
        id="tool-without-name",
    ),
    pytest.param(
        {"model": "m", "input": "hi", "tools": [{"type": "function", "name": 7}]},
        400,
        "invalid_value",
        "tools[0].name",
        id="tool-name-number",
    ),
    pytest.param(
        {"model": "m", "input": "hi", "temperature": "hot"},
        400,
        "invalid_value",
        "temperature",
        id="temperature-string",
    ),
    pytest.param({"input": "hi"}, 400, "missing_required_parameter", "model", id="missing-model"),
    pytest.param({"model": "m", "input": []}, 400, "missing_input", "input", id="empty-input"),
    pytest.param(
        {"model": "m", "input": [{"type": "item_reference", "id": "msg_nope"}]},
        400,
        "not_found",
        "input[0].id",
        id="unknown-item-reference",
    ),
    pytest.param(
        {"model": "m", "input": "hi", "previous_response_id": "resp_nope"},
        404,
        "previous_response_not_found",
        "previous_response_id",
        id="unknown-previous",
    ),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("body", "status", "code", "param"), REQUEST_ERRORS)
async def test_request_errors(
    client: httpx.AsyncClient,
    shim: Shim,
    body: bytes | dict[str, Any],
    status: int,
    code: str,
    param: str | None,
    stream: bool,
) -> None:
    if isinstance(body, dict):
        body = json.dumps({**body, "stream": stream}).encode()
    response = await client.post("/v1/responses", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = envelope(response)
    assert error["code"] == code
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert shim.upstream.requests == [], "nothing reaches the upstream"


async def test_unknown_model_with_glob_route(make_shim: MakeShim, connect: Connect) -> None:
    shim = make_shim(routes=(Route(upstream=UPSTREAM_URL, match="gpt-*"),))
    client = connect(shim)
    response = await client.post("/v1/responses", json={"model": "llama-3", "input": "hi"})
    assert response.status_code == 404
    error = envelope(response)
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert "llama-3" in error["message"]
    ok = await client.post("/v1/responses", json={"model": "gpt-x", "input": "hi"})
    assert resource_of(ok)["model"] == "gpt-x"


async def test_body_too_large(make_shim: MakeShim, connect: Connect) -> None:
    shim = make_shim(max_body_bytes=1000)
    client = connect(shim)
    response = await client.post("/v1/responses", json={"model": "m", "input": "x" * 2000})
    assert response.status_code == 413
    assert envelope(response)["code"] == "request_too_large"


OPENAI_400 = {
    "error": {
        "message": "This model's maximum context length is 8 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}

# (id, upstream target factory, shim options, status, code, message part, retry-after, upstream calls)
UPSTREAM_ERRORS = [
    (
        "400-envelope",
        lambda: status_app(400, OPENAI_400),
        {},
        400,
        "context_length_exceeded",
        "maximum context length is 8 tokens",
        None,
        1,
    ),
    (
        "404-text",
        lambda: status_app(404, b"no such route"),
        {},
        404,
        "upstream_rejected",
        "no such route",
        None,
        1,
    ),
    (
        "429-no-retries",
        lambda: status_app(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
        {"retries": 0},
        429,
        "rate_limit_exceeded",
        "slow down",
        "0",
        1,
    ),
    (
        "429-one-retry",
        lambda: status_app(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
        {"retries": 1},
        429,
        "rate_limit_exceeded",
        "slow down",
        "0",
        2,
    ),
    (
        "500",
        lambda: status_app(500, b"Internal Server Error"),
        {},
        502,
        "upstream_error",
        "HTTP 500",
        None,
        1,
    ),
    ("502", lambda: status_app(502, b"Bad Gateway"), {}, 502, "upstream_error", "Bad Gateway", None, 1),
    (
        "503-one-retry",
        lambda: status_app(503, {"error": {"message": "overloaded"}}),
        {"retries": 1},
        502,
        "upstream_error",
        "overloaded",
        None,
        2,
    ),
    ("connection-refused", refused, {}, 502, "upstream_unreachable", "ConnectError", None, 1),
    (
        "connection-refused-retried",
        refused,
        {"retries": 1},
        502,
        "upstream_unreachable",
        "ConnectError",
        None,
        2,
    ),
    (
        "timeout",
        lambda: slow_app(5.0),
        {"timeouts": Timeouts(first_byte=0.05)},
        504,
        "upstream_timeout",
        "in time",
        None,
        1,
    ),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    ("target", "options", "status", "code", "message", "retry_after", "calls"),
    [pytest.param(*row[1:], id=row[0]) for row in UPSTREAM_ERRORS],
)
async def test_upstream_errors(
    make_shim: MakeShim,
    connect: Connect,
    target: Callable[[], Any],
    options: dict[str, Any],
    status: int,
    code: str,
    message: str,
    retry_after: str | None,
    calls: int,
    stream: bool,
) -> None:
    """Failures before the first byte: the same status and envelope whether or not the client streams."""
    shim = make_shim(target=target(), **options)
    response = await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi", "stream": stream})
    assert response.status_code == status, response.text
    error = envelope(response)
    assert error["code"] == code
    assert message in error["message"]
    assert response.headers.get("retry-after") == retry_after
    assert len(shim.upstream.requests) == calls


INVALID_400 = {
    "error": {
        "message": "Invalid value for 'top_k'.",
        "type": "invalid_request_error",
        "param": "top_k",
        "code": "invalid_value",
    }
}


async def test_upstream_client_error_keeps_status_and_param(make_shim: MakeShim, connect: Connect) -> None:
    shim = make_shim(target=status_app(400, INVALID_400))
    error = envelope(await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi"}))
    assert error == {**INVALID_400["error"], "type": "invalid_request_error"}
    # a context-length error is the one exception: the shim's own `context_length_exceeded` on `input`
    # (docs/context.md), whatever the vendor said
    shim = make_shim(target=status_app(400, OPENAI_400))
    error = envelope(await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi"}))
    assert (error["code"], error["param"], error["type"]) == (
        "context_length_exceeded",
        "input",
        "invalid_request_error",
    )


@pytest.mark.parametrize(
    ("target", "code"),
    [
        pytest.param(lambda: truncated_app(keep=3), "upstream_stream_truncated", id="truncated"),
        pytest.param(lambda: truncated_app(keep=0), "upstream_stream_truncated", id="empty-body"),
        pytest.param(lambda: broken_stream(keep=3), "upstream_reset", id="connection-reset"),
        pytest.param(lambda: broken_stream(keep=0), "upstream_reset", id="reset-before-data"),
    ],
)
async def test_stream_breaks_midway(
    make_shim: MakeShim, connect: Connect, target: Callable[[], Any], code: str
) -> None:
    shim = make_shim(target=target())
    client = connect(shim)
    response = await client.post("/v1/responses", json={"model": "m", "input": "hi", "stream": True})
    events = sse_events(response)
    check_lifecycle(events)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["error"]["code"] == code
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == code


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"<html>gateway</html>", "not a Chat completion", id="html"),
        pytest.param({"choices": "none"}, "not a Chat completion", id="wrong-shape"),
    ],
)
async def test_upstream_200_that_is_not_a_completion(
    make_shim: MakeShim, connect: Connect, body: bytes | dict[str, Any], message: str
) -> None:
    shim = make_shim(target=status_app(200, body))
    client = connect(shim)
    response = await client.post("/v1/responses", json={"model": "m", "input": "hi"})
    assert response.status_code == 502
    error = envelope(response)
    assert error["code"] == "upstream_invalid_response"
    assert message in error["message"]
    streamed = sse_events(
        await client.post("/v1/responses", json={"model": "m", "input": "hi", "stream": True})
    )
    check_lifecycle(streamed)
    assert streamed[-1]["response"]["status"] == "failed"


async def test_non_stream_body_breaks(make_shim: MakeShim, connect: Connect) -> None:
    shim = make_shim(target=broken_stream(keep=1))
    response = await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi"})
    assert response.status_code == 502
    assert envelope(response)["code"] == "upstream_reset"


ROUTING_ERRORS = [
    pytest.param("GET", "/v1/nope", 404, "not_found", None, id="unknown-path"),
    pytest.param("POST", "/v2/responses", 404, "not_found", None, id="unknown-version"),
    pytest.param("GET", "/v1/responses", 405, "method_not_allowed", "POST, OPTIONS", id="get-responses"),
    pytest.param("PUT", "/v1/responses", 405, "method_not_allowed", "POST, OPTIONS", id="put-responses"),
    pytest.param("DELETE", "/healthz", 405, "method_not_allowed", "GET, OPTIONS", id="delete-healthz"),
    pytest.param("POST", "/v1/models", 405, "method_not_allowed", "GET, OPTIONS", id="post-models"),
]


@pytest.mark.parametrize(("method", "path", "status", "code", "allow"), ROUTING_ERRORS)
async def test_routing_errors(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str, allow: str | None
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    error = envelope(response)
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert response.headers.get("allow") == allow


# --------------------------------------------------------------------------- credentials

ROUTE_KEY = "sk-route-secret"
SHIM_KEY = "sk-shim-client"

# (id, route has its own key, shim api keys, client key, status, key the upstream sees)
AUTH = [
    ("own-key-no-client-key", True, (SHIM_KEY,), None, 401, None),
    ("own-key-wrong-client-key", True, (SHIM_KEY,), "sk-wrong", 401, None),
    ("own-key-shim-key", True, (SHIM_KEY,), SHIM_KEY, 200, ROUTE_KEY),
    ("own-key-no-shim-keys-configured", True, (), SHIM_KEY, 401, None),
    ("pass-through", False, (), "sk-user", 200, "sk-user"),
    ("pass-through-anonymous", False, (), None, 200, None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    ("own_key", "api_keys", "client_key", "status", "upstream_key"),
    [pytest.param(*row[1:], id=row[0]) for row in AUTH],
)
async def test_credentials(
    make_shim: MakeShim,
    connect: Connect,
    own_key: bool,
    api_keys: tuple[str, ...],
    client_key: str | None,
    status: int,
    upstream_key: str | None,
    stream: bool,
) -> None:
    route = Route(upstream=UPSTREAM_URL, api_key=ROUTE_KEY if own_key else None)
    shim = make_shim(routes=(route,), api_keys=api_keys)
    headers = {"authorization": f"Bearer {client_key}"} if client_key else {}
    response = await connect(shim).post(
        "/v1/responses", json={"model": "m", "input": "hi", "stream": stream}, headers=headers
    )
    assert response.status_code == status, response.text
    if status == 401:
        assert envelope(response)["type"] == "authentication_error"
        assert shim.upstream.requests == []
        return
    (request,) = shim.upstream.requests
    expected = f"Bearer {upstream_key}" if upstream_key else None
    assert request.headers.get("authorization") == expected
    if own_key and client_key:
        sent = b"\n".join(k + b": " + v for k, v in request.headers.raw) + request.content
        assert client_key.encode() not in sent, "the client's key never goes upstream"


# --------------------------------------------------------------------------- diagnostics


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        pytest.param([{"type": "web_search"}], "unsupported_tool:tools[0]", id="web-search"),
        pytest.param([WEATHER_TOOL, {"type": "web_search"}], "unsupported_tool:tools[1]", id="mixed"),
        pytest.param([WEATHER_TOOL], None, id="function-only"),
        pytest.param(None, None, id="no-tools"),
    ],
)
async def test_diagnostics_header(
    client: httpx.AsyncClient, shim: Shim, tools: list[Any] | None, expected: str | None, stream: bool
) -> None:
    body: dict[str, Any] = {"model": "m", "input": "hi", "stream": stream}
    if tools is not None:
        body["tools"] = tools
    response = await client.post("/v1/responses", json=body)
    assert response.status_code == 200
    assert response.headers.get("x-shim-diagnostics") == expected
    sent_tools = shim.upstream.bodies[-1].get("tools") or []
    assert all(t["type"] == "function" for t in sent_tools), "only function tools go upstream"


@pytest.mark.parametrize(
    ("policy", "status", "header"),
    [
        pytest.param("warn", 200, "unsupported_tool:tools[0]", id="warn"),
        pytest.param("ignore", 200, None, id="ignore"),
        pytest.param("error", 400, None, id="error"),
    ],
)
async def test_diagnostics_policy(
    make_shim: MakeShim, connect: Connect, policy: str, status: int, header: str | None
) -> None:
    shim = make_shim(diagnostics=policy)
    body = {"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}
    response = await connect(shim).post("/v1/responses", json=body)
    assert response.status_code == status, response.text
    assert response.headers.get("x-shim-diagnostics") == header
    if status == 400:
        error = envelope(response)
        assert (error["code"], error["param"]) == ("unsupported_parameter", "tools[0]")
        assert shim.upstream.requests == [], "nothing half-translated goes upstream"


# --------------------------------------------------------------------------- keep-alive


async def test_keepalive_comments_while_upstream_is_silent(make_shim: MakeShim, connect: Connect) -> None:
    shim = make_shim(target=stalling_stream(0.15), timeouts=Timeouts(keepalive=0.02))
    response = await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi", "stream": True})
    events = sse_events(response)
    check_lifecycle(events)
    assert events[-1]["response"]["output"][0]["content"][0]["text"].startswith(scripted_chat.ANSWER)
    _, blocks = parse_sse(response.text)
    assert ": keep-alive" in blocks
    first_event = next(i for i, b in enumerate(blocks) if b.startswith("event: "))
    assert first_event == 0, "keep-alives come only after response.created"


async def test_idle_upstream_ends_the_stream(make_shim: MakeShim, connect: Connect) -> None:
    opened: list[Any] = []
    shim = make_shim(
        target=stalling_stream(pause=5.0, at=3, opened=opened), timeouts=Timeouts(idle=0.2, keepalive=0.05)
    )
    async with asyncio.timeout(2.0):
        response = await connect(shim).post(
            "/v1/responses", json={"model": "m", "input": "hi", "stream": True}
        )
    events = sse_events(response)
    check_lifecycle(events)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["error"]["code"] == "upstream_timeout"
    _, blocks = parse_sse(response.text)
    assert ": keep-alive" in blocks, "keep-alives while waiting, up to the idle limit"
    assert [stream.closed for stream in opened] == [1]


# --------------------------------------------------------------------------- client goes away


async def test_client_disconnect_mid_stream_stores_nothing(make_shim: MakeShim, connect: Connect) -> None:
    opened: list[Any] = []
    shim = make_shim(target=stalling_stream(pause=5.0, at=2, opened=opened))
    body = json.dumps({"model": "m", "input": "hi", "stream": True}).encode()
    async with asyncio.timeout(2.0):  # the upstream pauses 5 s: hanging up must cut that short
        chunks = await asgi_post(shim.app, "/v1/responses", body, hang_up_after_first_chunk=True)
    text = b"".join(chunks)
    assert b"response.completed" not in text and b"[DONE]" not in text
    pairs, _ = parse_sse(text.decode())
    created = json.loads(pairs[0][1])
    assert created["type"] == "response.created"
    assert [stream.closed for stream in opened] == [1], "the upstream stream is closed once"
    follow = await connect(shim).post(
        "/v1/responses",
        json={"model": "m", "input": "again", "previous_response_id": created["response"]["id"]},
    )
    assert follow.status_code == 404, "an unfinished response is not stored"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"input": "Hello"}, id="text"),
        pytest.param({"input": "Weather?", "tools": [WEATHER_TOOL]}, id="tool"),
    ],
)
async def test_sse_chunks_hold_whole_events(shim: Shim, body: dict[str, Any]) -> None:
    """No event is ever split across chunks (a client parsing per read would break); the events
    made from one upstream chunk share one write (bench/README.md: per-write costs), and the last
    batch goes out with ``[DONE]``."""
    payload = json.dumps({"model": "m", "stream": True, **body}).encode()
    chunks = await asgi_post(shim.app, "/v1/responses", payload)
    assert chunks[-1].endswith(b"\n\ndata: [DONE]\n\n"), "the last events and [DONE]: one write"
    chunks[-1] = chunks[-1].removesuffix(b"data: [DONE]\n\n")
    names: list[str] = []
    for chunk in chunks:
        pairs, blocks = parse_sse(chunk.decode())
        assert len(blocks) == len(pairs) >= 1, chunk[:120]
        names += [name for name, _ in pairs]
    assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.completed"
    assert len(chunks) < len(names), "events of one upstream chunk go out together"
    await shim.client.aclose()


# --------------------------------------------------------------------------- models and health


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_models(client: httpx.AsyncClient, shim: Shim) -> None:
    response = await client.get("/v1/models", headers={"authorization": "Bearer sk-user"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert data["object"] == "list"
    assert [m["id"] for m in data["data"]] == ["scripted"]
    (request,) = shim.upstream.requests
    assert (request.method, str(request.url)) == ("GET", f"{UPSTREAM_URL}/models")
    assert request.headers["authorization"] == "Bearer sk-user"


async def test_models_per_route_credentials(make_shim: MakeShim, connect: Connect) -> None:
    """Each route is asked with its own credentials, whatever model names its glob matches; the
    shim key is never forwarded (a keyless route gets no key)."""
    routes = (
        Route(upstream="http://gpt.test/v1", match="gpt-*", api_key="sk-gpt"),
        Route(upstream="http://nebius.test/v1", provider="nebius", api_key="sk-nebius"),
        Route(upstream="http://open.test/v1"),
    )
    shim = make_shim(routes=routes, api_keys=(SHIM_KEY,))
    response = await connect(shim).get("/v1/models", headers={"authorization": f"Bearer {SHIM_KEY}"})
    assert response.status_code == 200
    assert sorted(m["id"] for m in response.json()["data"]) == ["scripted", "scripted:nebius"]
    seen = {r.url.host: r.headers.get("authorization") for r in shim.upstream.requests}
    assert seen == {
        "gpt.test": "Bearer sk-gpt",
        "nebius.test": "Bearer sk-nebius",
        "open.test": None,
    }


async def test_models_skips_failing_upstreams(make_shim: MakeShim, connect: Connect) -> None:
    shim = make_shim(target=status_app(500, b"down"))
    response = await connect(shim).get("/v1/models")
    assert response.status_code == 200
    assert response.json() == {"object": "list", "data": []}


async def test_empty_previous_response_id_names_nothing(client: httpx.AsyncClient, shim: Shim) -> None:
    response = await client.post(
        "/v1/responses", json={"model": "m", "input": "hi", "previous_response_id": ""}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "previous_response_not_found"
    assert shim.upstream.requests == []

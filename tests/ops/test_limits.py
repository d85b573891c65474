"""Request limits: each one is enforced with a clear 4xx in the envelope, before any upstream call.

Defaults are documented in docs/operations.md; the spec's own lengths (metadata 16 pairs,
keys 64 and values 512 chars, call ids and names 64) come from ``shim.limits``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from shim.limits import Limits
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim

SMALL = Limits(max_input_items=10, max_json_depth=20, max_tools=3)
MSG = {"type": "message", "role": "user", "content": "hi"}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": [value]} if _ % 2 else [value]
    return value


# id, raw body (bytes) or JSON body, status, code, param
LIMITS: list[tuple[str, bytes | dict[str, Any], int, str, str | None]] = [
    ("body-too-large", {"model": "ok", "input": "x" * 300_000}, 413, "request_too_large", None),
    ("invalid-utf8", b'{"model": "ok", "input": "caf\xc3\x28"}', 400, "invalid_utf8", None),
    ("invalid-utf8-lone-byte", b'{"model": "ok", "input": "\xff"}', 400, "invalid_utf8", None),
    ("deep-nesting", {"model": "ok", "input": "hi", "metadata": nested(30)}, 400, "json_too_deep", None),
    ("deep-nesting-huge", b'{"model":"ok","input":"hi","x":' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, "json_too_deep", None),
    ("too-many-input-items", {"model": "ok", "input": [MSG] * 11}, 400, "too_many_items", "input"),
    ("too-many-tools", {"model": "ok", "input": "hi", "tools": [{"type": "function", "name": f"t{i}"} for i in range(4)]}, 400, "too_many_items", "tools"),
    ("metadata-17-pairs", {"model": "ok", "input": "hi", "metadata": {f"k{i}": "v" for i in range(17)}}, 400, "too_many_items", "metadata"),
    ("metadata-key-65", {"model": "ok", "input": "hi", "metadata": {"k" * 65: "v"}}, 400, "string_too_long", "metadata"),
    ("metadata-value-513", {"model": "ok", "input": "hi", "metadata": {"k": "v" * 513}}, 400, "string_too_long", "metadata.k"),
    ("call-id-65", {"model": "ok", "input": [{"type": "function_call_output", "call_id": "c" * 65, "output": "x"}]}, 400, "string_too_long", "input[0].call_id"),
    ("call-id-empty", {"model": "ok", "input": [{"type": "function_call_output", "call_id": "", "output": "x"}]}, 400, "string_too_short", "input[0].call_id"),
    ("function-name-65", {"model": "ok", "input": [{"type": "function_call", "call_id": "c1", "name": "n" * 65, "arguments": "{}"}]}, 400, "string_too_long", "input[0].name"),
    ("tool-name-65", {"model": "ok", "input": "hi", "tools": [{"type": "function", "name": "n" * 65}]}, 400, "string_too_long", "tools[0].name"),
    ("safety-identifier-65", {"model": "ok", "input": "hi", "safety_identifier": "s" * 65}, 400, "string_too_long", "safety_identifier"),
    ("prompt-cache-key-65", {"model": "ok", "input": "hi", "prompt_cache_key": "p" * 65}, 400, "string_too_long", "prompt_cache_key"),
]  # fmt: skip

# Right at each limit: accepted and answered.
AT_LIMIT: list[tuple[str, dict[str, Any]]] = [
    ("ten-items", {"model": "ok", "input": [MSG] * 10}),
    ("metadata-16-pairs-64-512", {"model": "ok", "input": "hi", "metadata": {f"{i:064d}": "v" * 512 for i in range(16)}}),
    ("depth-19", {"model": "ok", "input": "hi", "metadata": {"k": "v"}, "text": {"format": {"type": "json_schema", "name": "s", "schema": nested(10)}}}),
    ("call-id-64", {"model": "ok", "input": [{"type": "function_call", "call_id": "c" * 64, "name": "n" * 64, "arguments": "{}"}, {"type": "function_call_output", "call_id": "c" * 64, "output": "x"}]}),
]  # fmt: skip


USER = {"role": "user", "content": "hi"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{}"}}
CHAT_TOOL = {"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}

# /v1/chat/completions: id, JSON body, code, param (all 400 invalid_request_error)
CHAT_LIMITS: list[tuple[str, dict[str, Any], str, str]] = [
    ("too-many-messages", {"model": "ok", "messages": [USER] * 11}, "too_many_items", "messages"),
    ("too-many-tools", {"model": "ok", "messages": [USER], "tools": [CHAT_TOOL] * 4}, "too_many_items", "tools"),
    ("too-many-functions", {"model": "ok", "messages": [USER], "functions": [{"name": "f"}] * 4}, "too_many_items", "functions"),
    ("metadata-17-pairs", {"model": "ok", "messages": [USER], "metadata": {f"k{i}": "v" for i in range(17)}}, "too_many_items", "metadata"),
    ("metadata-key-65", {"model": "ok", "messages": [USER], "metadata": {"k" * 65: "v"}}, "string_too_long", "metadata"),
    ("metadata-value-513", {"model": "ok", "messages": [USER], "metadata": {"k": "v" * 513}}, "string_too_long", "metadata.k"),
    ("tool-name-65", {"model": "ok", "messages": [USER], "tools": [{"type": "function", "function": {"name": "n" * 65}}]}, "string_too_long", "tools[0].function.name"),
    ("tool-name-empty", {"model": "ok", "messages": [USER], "tools": [{"type": "function", "function": {"name": ""}}]}, "string_too_short", "tools[0].function.name"),
    ("function-name-65", {"model": "ok", "messages": [USER], "functions": [{"name": "n" * 65}]}, "string_too_long", "functions[0].name"),
    ("tool-call-id-65", {"model": "ok", "messages": [USER, {"role": "assistant", "tool_calls": [{**CALL, "id": "c" * 65}]}]}, "string_too_long", "messages[1].tool_calls[0].id"),
    ("tool-call-name-65", {"model": "ok", "messages": [USER, {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "n" * 65, "arguments": "{}"}}]}]}, "string_too_long", "messages[1].tool_calls[0].function.name"),
    ("tool-message-id-65", {"model": "ok", "messages": [USER, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "tool_call_id": "c" * 65, "content": "x"}]}, "string_too_long", "messages[2].tool_call_id"),
    ("tool-message-id-empty", {"model": "ok", "messages": [USER, {"role": "tool", "tool_call_id": "", "content": "x"}]}, "string_too_short", "messages[1].tool_call_id"),
    ("safety-identifier-65", {"model": "ok", "messages": [USER], "safety_identifier": "s" * 65}, "string_too_long", "safety_identifier"),
    ("prompt-cache-key-65", {"model": "ok", "messages": [USER], "prompt_cache_key": "p" * 65}, "string_too_long", "prompt_cache_key"),
]  # fmt: skip

CHAT_AT_LIMIT: list[tuple[str, dict[str, Any]]] = [
    ("ten-messages", {"model": "ok", "messages": [USER] * 10}),
    ("three-tools-metadata-16-pairs-64-512", {"model": "ok", "messages": [USER], "tools": [CHAT_TOOL] * 3, "metadata": {f"{i:064d}": "v" * 512 for i in range(16)}}),
    ("ids-and-names-64", {"model": "ok", "messages": [USER, {"role": "assistant", "tool_calls": [{**CALL, "id": "c" * 64, "function": {"name": "n" * 64, "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c" * 64, "content": "x"}]}),
]  # fmt: skip


@pytest.fixture
async def shim(fault: FaultUpstream) -> Any:
    shim = LiveShim(fault.url, max_body_bytes=200_000, limits=SMALL)
    yield shim
    await shim.aclose()


# Every route kind of ``POST /v1/responses``: translated over Chat, passed through to an upstream
# that speaks Open Responses (stateless, and stateful: the body goes as it came).
KINDS = {
    "chat": {},
    "responses-passthrough": {"kind": "responses"},
    "responses-passthrough-stateful": {"kind": "responses", "stateful": True},
}


@pytest.fixture(params=KINDS.values(), ids=KINDS.keys())
async def any_route(request: pytest.FixtureRequest, fault: FaultUpstream) -> Any:
    shim = LiveShim(fault.url, route=request.param, max_body_bytes=200_000, limits=SMALL)
    yield shim
    await shim.aclose()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("body", "status", "code", "param"), [pytest.param(*r[1:], id=r[0]) for r in LIMITS])
async def test_limit_enforced(
    any_route: LiveShim,
    fault: FaultUpstream,
    body: bytes | dict[str, Any],
    status: int,
    code: str,
    param: str | None,
    stream: bool,
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps({**body, "stream": stream}).encode()
    response = await any_route.client.post(
        "/v1/responses", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["type"]) == (code, "invalid_request_error")
    assert error["param"] == param
    assert fault.connections_seen == 0, "nothing reaches the upstream"


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in AT_LIMIT])
async def test_at_the_limit_is_accepted(shim: LiveShim, body: dict[str, Any]) -> None:
    response = await shim.client.post("/v1/responses", json=body)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["status"] == "completed"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("body", "code", "param"), [pytest.param(*r[1:], id=r[0]) for r in CHAT_LIMITS])
async def test_chat_limit_enforced(
    shim: LiveShim, fault: FaultUpstream, body: dict[str, Any], code: str, param: str, stream: bool
) -> None:
    response = await shim.client.post("/v1/chat/completions", json={**body, "stream": stream})
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["type"], error["param"]) == (code, "invalid_request_error", param)
    assert fault.connections_seen == 0, "nothing reaches the upstream"


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in CHAT_AT_LIMIT])
async def test_chat_at_the_limit_is_accepted(
    shim: LiveShim, fault: FaultUpstream, body: dict[str, Any]
) -> None:
    response = await shim.client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["choices"][0]["finish_reason"] == "stop"
    assert fault.connections_seen == 1


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/chat/completions"])
async def test_guard_covers_every_endpoint(shim: LiveShim, path: str) -> None:
    response = await shim.client.post(path, content=b'{"model": "\xff"}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_utf8"


async def test_urls_in_requests_are_never_fetched(fault: FaultUpstream) -> None:
    """Image and file URLs go to the upstream untouched; the shim itself connects to none of them."""
    hits: list[bytes] = []

    async def listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(listener, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    image = f"http://127.0.0.1:{port}/cat.png"
    file = f"http://127.0.0.1:{port}/doc.pdf"
    shim = LiveShim(fault.url)
    try:
        content = [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": image},
            {"type": "input_file", "file_url": file},
        ]
        for stream in (False, True):
            body = {"model": "ok", "stream": stream, "input": [{"role": "user", "content": content}]}
            response = await shim.client.post("/v1/responses", json=body)
            assert response.status_code == 200, response.text[:300]
        await asyncio.sleep(0.2)
        assert hits == [], "the shim connected to a URL from the request"
        sent = json.dumps(fault.bodies)
        assert image in sent, "the image URL reaches the upstream as it was"
    finally:
        await shim.aclose()
        server.close()
        await server.wait_closed()

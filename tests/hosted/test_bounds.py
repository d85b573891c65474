"""Bounds of a hosted call: the call timeout, a client that hangs up mid-call, redirects and the
SSE fallback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import httpx

from tests.hosted.conftest import build
from tests.hosted.test_mcp_loop import mcp_tool
from tests.server.harness import Shim
from tests.support.mcp_servers import McpServers


async def test_call_timeout_is_an_error_the_model_reads(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build(mcp_call_timeout=0.5)
    tool = mcp_tool(mcp.v1, allowed_tools=["slow"])
    out = (
        await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi", "tools": [tool]})
    ).json()
    assert out["status"] == "completed"
    call = out["output"][1]
    assert (
        call["status"] == "failed" and call["error"]["type"] == "http_error" and call["error"]["code"] == 504
    )
    assert "timed out" in shim.upstream.bodies[1]["messages"][-1]["content"]


async def hang_up_when(app: Any, body: dict[str, Any], marker: bytes) -> list[bytes]:
    """POST ``body`` as a stream and hang up once a chunk holding ``marker`` went out."""
    chunks: list[bytes] = []
    seen = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
        await seen.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            if marker in message["body"]:
                seen.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/responses",
        "raw_path": b"/v1/responses",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"shim")],
        "client": ("127.0.0.1", 1),
        "server": ("shim", 80),
    }
    await app(scope, receive, send)
    return chunks


async def test_hang_up_cancels_a_running_call(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build()
    tool = mcp_tool(mcp.v2, allowed_tools=["slow"])  # the scripted model asks for the 30 s pace
    began = time.monotonic()
    async with asyncio.timeout(20):
        chunks = await hang_up_when(
            shim.app,
            {"model": "m", "input": "hi", "stream": True, "tools": [tool]},
            b"response.mcp_call.in_progress",
        )
    assert time.monotonic() - began < 15  # the 30 s call did not run to its end
    text = b"".join(chunks).decode()
    assert "response.mcp_call.completed" not in text and "response.completed" not in text
    assert len(shim.upstream.bodies) == 1  # no round after the call
    response_id = json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])["response"]["id"]
    assert (await connect(shim).get(f"/v1/responses/{response_id}")).status_code == 404  # nothing stored
    await shim.client.aclose()


async def test_redirect_outside_the_allow_list_is_not_followed(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    from shim.hosted.servers import Guard, McpServer

    guard = Guard(McpServer("x", "http://127.0.0.1:1/mcp"), ("http://127.0.0.1:1/*",))
    assert guard.permits(httpx.URL("http://127.0.0.1:1/mcp/next"))
    assert not guard.permits(httpx.URL("http://169.254.169.254/latest"))
    registered = Guard(McpServer("x", "http://127.0.0.1:1/mcp", registered=True), ())
    assert registered.permits(httpx.URL("http://127.0.0.1:1/elsewhere"))
    assert not registered.permits(httpx.URL("http://127.0.0.1:2/mcp"))


async def test_a_redirecting_server_is_refused(
    connect: Callable[[Shim], httpx.AsyncClient], mcp: McpServers
) -> None:
    """A server answering with a redirect to a place outside the list: the request never goes there."""
    from shim.hosted.mcp_client import list_tools
    from shim.hosted.servers import HostedConfig, McpServer
    from tests.support.processes import free_port

    port = free_port()

    async def redirector(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: "
            + mcp.v1.encode()
            + b"\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(redirector, "127.0.0.1", port)
    try:
        config = HostedConfig(allow=(f"http://127.0.0.1:{port}/*",), connect_timeout=3, call_timeout=3)
        try:
            await list_tools(McpServer("r", f"http://127.0.0.1:{port}/mcp"), config)
        except Exception as exc:  # refused (not allowed) or failed: never listed through the redirect
            assert "magic_word" not in str(exc)
        else:
            raise AssertionError("a redirect outside the allow list was followed")
    finally:
        server.close()
        await server.wait_closed()


async def test_keepalive_while_a_tool_works(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    from shim.settings import Timeouts
    from tests.server.harness import parse_sse

    shim = build(mcp_call_timeout=1.0, timeouts=Timeouts(keepalive=0.1))
    tool = mcp_tool(mcp.v1, allowed_tools=["slow"])  # 30 s, cut by the 1 s call timeout
    res = await connect(shim).post(
        "/v1/responses", json={"model": "m", "input": "hi", "stream": True, "tools": [tool]}
    )
    _, blocks = parse_sse(res.text)
    assert ": keep-alive" in blocks
    assert res.text.rstrip().endswith("data: [DONE]")


async def toolless(scope: Any, receive: Any, send: Any) -> None:
    """A Chat upstream that cannot call tools: it never sees them (and answers in text)."""
    from tests.support import scripted_chat
    from tests.support.scripted_asgi import read_body

    body = json.loads(await read_body(receive))
    body.pop("tools", None)
    body.pop("tool_choice", None)
    data = json.dumps(body).encode()

    async def again() -> dict[str, Any]:
        return {"type": "http.request", "body": data, "more_body": False}

    await scripted_chat.app(scope, again, send)


async def test_an_upstream_that_cannot_call_tools(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    """The tools are listed and offered; the model answers without calling: one round."""
    shim = build(target=toolless)
    out = (
        await connect(shim).post(
            "/v1/responses", json={"model": "m", "input": "hi", "tools": [mcp_tool(mcp.v1)]}
        )
    ).json()
    assert out["status"] == "completed"
    assert [i["type"] for i in out["output"]] == ["mcp_list_tools", "message"]
    assert len(shim.upstream.bodies) == 1


async def test_a_conversation_keeps_the_tool_list(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build()
    client = connect(shim)
    conversation = (await client.post("/v1/conversations", json={})).json()["id"]
    tool = mcp_tool(mcp.v2)
    body = {"model": "m", "input": "hi", "conversation": conversation, "tools": [tool]}
    first = (await client.post("/v1/responses", json=body)).json()
    second = (await client.post("/v1/responses", json={**body, "input": "again"})).json()
    assert [i["type"] for i in first["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert [i["type"] for i in second["output"]] == ["mcp_call", "message"]
    items = (await client.get(f"/v1/conversations/{conversation}/items", params={"order": "asc"})).json()[
        "data"
    ]
    assert [i["type"] for i in items].count("mcp_call") == 2


async def test_input_items_list_hosted_items_as_sent(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build()
    client = connect(shim)
    tool = mcp_tool(mcp.v1, allowed_tools=["delete_file"], require_approval="always")
    first = (await client.post("/v1/responses", json={"model": "m", "input": "x", "tools": [tool]})).json()
    approve = {
        "type": "mcp_approval_response",
        "approval_request_id": first["output"][1]["id"],
        "approve": True,
    }
    body = {"model": "m", "previous_response_id": first["id"], "input": [approve], "tools": [tool]}
    second = (await client.post("/v1/responses", json=body)).json()
    listed = (await client.get(f"/v1/responses/{second['id']}/input_items")).json()["data"]
    assert [i["type"] for i in listed] == ["mcp_approval_response"]
    assert listed[0]["approval_request_id"] == approve["approval_request_id"]

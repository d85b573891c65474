"""The shim's own MCP client (``shim.hosted.streamable``): its protocol against real servers of
both SDK lines, and against a hand-made server (``Synthetic``, an aiohttp app) for what a real
server will not produce on demand: SSE answers with notifications and server requests before the
result, JSON-RPC errors, a forgotten session, a garbage body, an oversize answer, a server that
never answers, redirects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from shim.errors import McpServerNotAllowed
from shim.hosted import streamable
from shim.hosted.mcp_client import McpFailure, ToolResult, call_tool, list_tools
from shim.hosted.servers import Guard, HostedConfig, McpServer
from tests.support.mcp_servers import McpServers
from tests.support.processes import free_port

TOOL = {"name": "echo", "inputSchema": {"type": "object"}, "description": "Says it back."}


def test_the_protocol_versions_are_the_sdks() -> None:
    """The version sent and those accepted are the SDK client's: fails when the SDK moves on."""
    from mcp.shared.version import SUPPORTED_PROTOCOL_VERSIONS
    from mcp.types import LATEST_PROTOCOL_VERSION

    assert streamable.LATEST == LATEST_PROTOCOL_VERSION
    assert tuple(SUPPORTED_PROTOCOL_VERSIONS) == streamable.SUPPORTED


PROXIES = [
    (
        "http, proxied",
        {"HTTP_PROXY": "http://proxy.test:3128"},
        "http://mcp.example.com/mcp",
        "http://proxy.test:3128",
    ),
    (
        "https, its own variable",
        {"HTTPS_PROXY": "proxy.test:8080"},
        "https://mcp.example.com/mcp",
        "http://proxy.test:8080",
    ),
    ("ALL_PROXY", {"ALL_PROXY": "http://all.test:1"}, "https://mcp.example.com/mcp", "http://all.test:1"),
    ("loopback, never", {"HTTP_PROXY": "http://proxy.test:3128"}, "http://127.0.0.1:9/mcp", None),
    ("localhost, never", {"HTTP_PROXY": "http://proxy.test:3128"}, "http://localhost:9/mcp", None),
    (
        "NO_PROXY",
        {"HTTP_PROXY": "http://proxy.test:3128", "NO_PROXY": "example.com"},
        "http://mcp.example.com/mcp",
        None,
    ),
    ("none set", {}, "http://mcp.example.com/mcp", None),
]


@pytest.mark.parametrize(("case", "env", "url", "proxy"), PROXIES, ids=[c[0] for c in PROXIES])
def test_the_proxy_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, case: str, env: dict[str, str], url: str, proxy: str | None
) -> None:
    from yarl import URL

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    chosen = streamable._proxy(URL(url))
    assert (str(chosen) if chosen else None) == proxy


# -- real servers (mcp 1.x FastMCP, 2.x MCPServer) ------------------------------------------------


def _client(url: str, **bounds: Any) -> streamable.StreamableClient:
    server = McpServer("demo", url)
    return streamable.StreamableClient(
        url,
        {"x-probe": "1"},
        Guard(server, ("http://127.0.0.1:*",)),
        connect_timeout=5,
        max_body=bounds.get("max_body", 1 << 20),
    )


@pytest.mark.parametrize("line", ["v1", "v2"])
async def test_a_real_server_session(mcp: McpServers, line: str) -> None:
    import aiohttp

    url = getattr(mcp, line)
    client = _client(url)
    try:
        init = await client.initialize()
        assert client.protocol_version == streamable.LATEST == init["protocolVersion"]
        assert client.session_id  # both lines give one
        page = await client.list_tools()
        names = [t["name"] for t in page["tools"]]
        assert names[0] == "magic_word" and "header_names" in names
        assert client.schemas["header_names"] is not None  # an outputSchema, kept for the check
        result = await client.call_tool("magic_word", {"word": "New York"})
        assert result["content"] == [{"type": "text", "text": "magic-new-york-42"}]
        headers = await client.call_tool("header_names", {})
        assert headers["structuredContent"] == {"result": "x-probe"}  # checked against its schema
        failed = await client.call_tool("fail_tool", {"reason": "why"})
        assert failed["isError"] is True and "fail_tool" in json.dumps(failed["content"])  # 2.x hides why
        kept = client.session_id
    finally:
        await client.aclose(5)
    # The DELETE ended the session on the server: it no longer knows the id.
    async with aiohttp.ClientSession() as http:
        body = {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}
        headers = {"mcp-session-id": str(kept), "accept": "application/json, text/event-stream"}
        async with http.post(url, json=body, headers=headers) as answer:
            assert answer.status == 404


@pytest.mark.parametrize("line", ["v1", "v2"])
async def test_a_real_server_rejects_bad_arguments_as_a_tool_error(mcp: McpServers, line: str) -> None:
    config = HostedConfig(allow=("http://127.0.0.1:*",))
    result = await call_tool(McpServer("demo", getattr(mcp, line)), "magic_word", {"nope": 1}, config)
    assert result.output is None and result.error is not None
    assert result.error["type"] in ("mcp_tool_execution_error", "mcp_protocol_error")


# -- a hand-made server ------------------------------------------------------------------------

Handler = Callable[["Synthetic", dict[str, Any], web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Synthetic:
    """A hand-made streamable HTTP MCP server: ``initialize`` and the notification answered as a
    real one does; ``tools/list`` and ``tools/call`` by ``on[method]``."""

    port: int
    on: dict[str, Handler] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str], Any]] = field(
        default_factory=list
    )  # method, path, headers, body
    sessions: set[str] = field(default_factory=set)
    version: str = streamable.LATEST
    replies: list[dict[str, Any]] = field(default_factory=list)  # the client's answers to our requests
    replied: asyncio.Event = field(default_factory=asyncio.Event)
    pending: Any = None  # the id of a request whose answer a resumed stream carries

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def posted(self, method: str) -> list[tuple[str, str, dict[str, str], Any]]:
        return [s for s in self.seen if isinstance(s[3], dict) and s[3].get("method") == method]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.method == "POST" else None
        self.seen.append((request.method, request.path, dict(request.headers), body))
        if request.method == "DELETE":
            self.sessions.discard(request.headers.get("mcp-session-id", ""))
            return web.Response(status=200)
        if not request.path.startswith("/mcp"):
            return web.Response(status=404)
        if request.method == "GET":  # resuming a stream (Last-Event-ID)
            return await self.on["GET"](self, {}, request)
        assert isinstance(body, dict)
        sid = request.headers.get("mcp-session-id")
        if body.get("method") == "initialize":
            sid = f"s{len(self.sessions) + 1}-{len(self.seen)}"
            self.sessions.add(sid)
            result = {
                "protocolVersion": self.version,
                "capabilities": {},
                "serverInfo": {"name": "x", "version": "1"},
            }
            return web.json_response(
                {"jsonrpc": "2.0", "id": body["id"], "result": result}, headers={"mcp-session-id": sid}
            )
        if sid not in self.sessions:
            return web.Response(status=404, text="Session not found")
        if "method" not in body:  # the client's reply to a request of ours
            self.replies.append(body)
            self.replied.set()
            return web.Response(status=202)
        if body["method"] == "notifications/initialized":
            return web.Response(status=202)
        return await self.on[body["method"]](self, body, request)


@pytest.fixture
async def synthetic() -> AsyncIterator[Synthetic]:
    fake = Synthetic(free_port())
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", fake.port).start()
    try:
        yield fake
    finally:
        await runner.cleanup()


def answer(body: dict[str, Any], result: dict[str, Any]) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})


async def listed(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    return answer(body, {"tools": [TOOL]})


async def echoed(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    text = body["params"]["arguments"]["text"]
    return answer(body, {"content": [{"type": "text", "text": text}], "isError": False})


async def sse(
    request: web.Request, *messages: dict[str, Any], wait: asyncio.Event | None = None
) -> web.StreamResponse:
    """The messages as an SSE answer (waiting for ``wait`` before the last one)."""
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    for n, message in enumerate(messages):
        if wait is not None and n == len(messages) - 1:
            await asyncio.wait_for(wait.wait(), 5)
        await out.write(f"event: message\r\nid: {n}\r\ndata: {json.dumps(message)}\r\n\r\n".encode())
    await out.write_eof()
    return out


def _config(fake: Synthetic, **bounds: Any) -> HostedConfig:
    given = {"connect_timeout": 3, "call_timeout": 3, **bounds}
    return HostedConfig(allow=(f"http://127.0.0.1:{fake.port}/mcp*",), **given)


async def _call(fake: Synthetic, text: str = "hi", **bounds: Any) -> ToolResult:
    return await call_tool(McpServer("fake", fake.url), "echo", {"text": text}, _config(fake, **bounds))


async def test_synthetic_headers_of_a_session(synthetic: Synthetic) -> None:
    """Accept and Content-Type on each POST; the session id and protocol version after initialize;
    DELETE with the session id when the session closes."""
    from shim.hosted import sessions

    synthetic.on = {"tools/list": listed, "tools/call": echoed}
    assert [t.name for t in await list_tools(McpServer("fake", synthetic.url), _config(synthetic))] == [
        "echo"
    ]
    assert (await _call(synthetic)).output == "hi"
    await sessions.close_all()
    init, note, listing, call, delete = synthetic.seen
    for _, _, headers, _ in (init, note, listing, call):
        assert headers["Accept"] == "application/json, text/event-stream"
        assert headers["Content-Type"] == "application/json"
    assert "Mcp-Session-Id" not in init[2] and "MCP-Protocol-Version" not in init[2]
    assert init[3]["params"]["protocolVersion"] == streamable.LATEST
    sid = note[2]["Mcp-Session-Id"]
    for _, _, headers, _ in (note, listing, call, delete):
        assert headers["Mcp-Session-Id"] == sid and headers["MCP-Protocol-Version"] == streamable.LATEST
    assert note[3] == {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert listing[3] == {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    assert delete[0] == "DELETE" and sid not in synthetic.sessions


async def _paged(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    cursor = (body.get("params") or {}).get("cursor")
    page = {
        None: ([TOOL], "p2"),
        "p2": ([{**TOOL, "name": "two"}], "p3"),
        "p3": ([{**TOOL, "name": "three"}], None),
    }
    tools, after = page[cursor]
    return answer(body, {"tools": tools, **({"nextCursor": after} if after else {})})


async def test_synthetic_pages_of_tools(synthetic: Synthetic) -> None:
    synthetic.on = {"tools/list": _paged}
    found = await list_tools(McpServer("fake", synthetic.url), _config(synthetic))
    assert [t.name for t in found] == ["echo", "two", "three"]
    assert [s[3].get("params") for s in synthetic.posted("tools/list")] == [
        None,
        {"cursor": "p2"},
        {"cursor": "p3"},
    ]


async def _noisy(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
    progress = {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": 1, "progress": 0.5},
    }
    log = {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "info", "data": "working"},
    }
    other = {"jsonrpc": "2.0", "id": 999, "result": {}}  # an answer to nothing the client asked
    done = {
        "jsonrpc": "2.0",
        "id": body["id"],
        "result": {"content": [{"type": "text", "text": "after noise"}]},
    }
    return await sse(request, progress, log, other, done)


async def _pinging(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
    ping = {"jsonrpc": "2.0", "id": "srv-1", "method": "ping"}
    sample = {"jsonrpc": "2.0", "id": "srv-2", "method": "sampling/createMessage", "params": {}}
    done = {
        "jsonrpc": "2.0",
        "id": body["id"],
        "result": {"content": [{"type": "text", "text": "pong seen"}]},
    }
    return await sse(request, ping, sample, done, wait=fake.replied)


async def test_synthetic_sse_answer_after_notifications(synthetic: Synthetic) -> None:
    synthetic.on = {"tools/list": listed, "tools/call": _noisy}
    assert (await _call(synthetic)).output == "after noise"
    assert synthetic.replies == []  # notifications are not answered


async def test_synthetic_server_requests_in_the_stream_are_answered(synthetic: Synthetic) -> None:
    """A ping gets its empty result, a request the client cannot serve a JSON-RPC error; the
    server waited for them before answering (a client that did not reply would hang here)."""
    synthetic.on = {"tools/list": listed, "tools/call": _pinging}
    assert (await _call(synthetic)).output == "pong seen"
    assert synthetic.replies == [
        {"jsonrpc": "2.0", "id": "srv-1", "result": {}},
        {"jsonrpc": "2.0", "id": "srv-2", "error": {"code": -32601, "message": "Method not found"}},
    ]


def _ending_late(gate: asyncio.Event, ports: list[int]) -> Handler:
    """The list answered in an SSE stream whose end waits for ``gate`` (the peer port of each
    request kept in ``ports``)."""

    async def handle(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        ports.append(request.transport.get_extra_info("peername")[1] if request.transport else 0)
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        message = {"jsonrpc": "2.0", "id": body["id"], "result": {"tools": [TOOL]}}
        await out.write(f"event: message\r\ndata: {json.dumps(message)}\r\n\r\n".encode())
        await gate.wait()
        await out.write_eof()
        return out

    return handle


@pytest.mark.parametrize("ends", ["later", "never"])
async def test_synthetic_an_answered_stream_ends_on_its_own(synthetic: Synthetic, ends: str) -> None:
    """The answer is used as it arrives, the stream's end not awaited; a stream that ends after
    the answer was used gives its connection back for the next request, one that does not end
    within the grace has its connection closed (the next request opens another)."""
    from shim.hosted import sessions

    gate, ports = asyncio.Event(), []
    synthetic.on = {"tools/list": _ending_late(gate, ports)}
    server, config = McpServer("fake", synthetic.url), _config(synthetic)
    assert [t.name for t in await list_tools(server, config)] == ["echo"]
    (session,) = [s for idle in sessions._POOL.idle.values() for s in idle]
    assert session.unended()  # returned before the stream's end
    if ends == "later":
        gate.set()
    for _ in range(200):
        if not session.unended():
            break
        await asyncio.sleep(0.01)
    assert not session.unended()  # ended, or closed after the grace
    gate.set()
    assert [t.name for t in await list_tools(server, config)] == ["echo"]
    assert (ports[0] == ports[1]) is (ends == "later")


async def _closing_early(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
    """The stream ends after an event with an id, before the answer (as a server polling its
    clients does); the answer comes on the resumed stream."""
    fake.pending = body["id"]
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    await out.write(b"id: e1\nretry: 10\ndata: \n\n")  # an event with an id and no data: a priming event
    await out.write_eof()
    return out


async def _resumed(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
    assert request.headers["Last-Event-ID"] == "e1" and request.headers["Accept"] == "text/event-stream"
    done = {
        "jsonrpc": "2.0",
        "id": fake.pending,
        "result": {"content": [{"type": "text", "text": "resumed"}]},
    }
    return await sse(request, done)


async def _resumed_empty(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
    return await sse(request, {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})


async def test_synthetic_a_stream_closed_early_is_resumed(synthetic: Synthetic) -> None:
    synthetic.on = {"tools/list": listed, "tools/call": _closing_early, "GET": _resumed}
    assert (await _call(synthetic)).output == "resumed"
    gets = [s for s in synthetic.seen if s[0] == "GET"]
    assert len(gets) == 1 and gets[0][2]["Mcp-Session-Id"] in synthetic.sessions
    # Resumed streams that never answer: given up after a few, an error (never a wait).
    synthetic.on["GET"] = _resumed_empty
    with pytest.raises(McpFailure) as caught:
        await _call(synthetic)
    assert (
        caught.value.error["message"]
        == "MCP server 'fake': the server's event stream ended without an answer"
    )
    assert len([s for s in synthetic.seen if s[0] == "GET"]) == 1 + streamable._RESUMES


async def _rpc_error(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    error = {"code": -32602, "message": "Unknown tool: echo"}
    return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": error})


async def _garbage(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    return web.Response(text="<html>oops</html>", content_type="application/json")


async def _html(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    return web.Response(text="<html>oops</html>", content_type="text/html")


async def _no_result(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "id": body["id"]})


async def _wrong_id(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    return answer({"id": 12345}, {"tools": []})


async def _bad_tools(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    return answer(body, {"tools": [{"name": "x"}]})  # no inputSchema


async def _cut_stream(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
    """A notification, then the end: no event id, so nothing to resume."""
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    await out.write(b'data: {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}\n\n')
    await out.write_eof()
    return out


async def _server_error(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


LIST_FAILURES = [
    ("a JSON-RPC error", _rpc_error, "mcp_protocol_error", -32602, "MCP server 'fake': Unknown tool: echo"),
    (
        "a body that is not JSON",
        _garbage,
        "mcp_protocol_error",
        -32700,
        "MCP server 'fake': the answer is not JSON: b'<html>oops</html>'",
    ),
    (
        "an unexpected content type",
        _html,
        "mcp_protocol_error",
        -32603,
        "MCP server 'fake': Unexpected content type: text/html; charset=utf-8",
    ),
    (
        "neither result nor error",
        _no_result,
        "mcp_protocol_error",
        -32603,
        "MCP server 'fake': the answer holds neither a result object nor an error",
    ),
    (
        "an answer to another id",
        _wrong_id,
        "mcp_protocol_error",
        -32603,
        "MCP server 'fake': the answer does not answer the request",
    ),
    (
        "tools without a schema",
        _bad_tools,
        "mcp_protocol_error",
        -32603,
        "MCP server 'fake': tools/list: `tools` is not a list of tools",
    ),
    (
        "a stream that ends unanswered",
        _cut_stream,
        "mcp_protocol_error",
        -32603,
        "MCP server 'fake': the server's event stream ended without an answer",
    ),
    ("HTTP 500", _server_error, "http_error", 500, "MCP server 'fake' answered HTTP 500."),
]


@pytest.mark.parametrize(
    ("case", "handler", "kind", "code", "message"), LIST_FAILURES, ids=[c[0] for c in LIST_FAILURES]
)
async def test_synthetic_listing_failures(
    synthetic: Synthetic, case: str, handler: Handler, kind: str, code: int, message: str
) -> None:
    from shim.hosted import sessions

    synthetic.on = {"tools/list": handler}
    server, config = McpServer("fake", synthetic.url), _config(synthetic)
    with pytest.raises(McpFailure) as caught:
        await list_tools(server, config)
    assert caught.value.error == {"type": kind, "code": code, "message": message}
    assert sessions.key_of(server, config) not in sessions._POOL.idle  # a failed session is not kept


async def test_synthetic_a_tool_call_error_is_the_models(synthetic: Synthetic) -> None:
    synthetic.on = {"tools/list": listed, "tools/call": _rpc_error}
    result = await _call(synthetic)
    assert result == ToolResult(
        None, {"type": "mcp_protocol_error", "code": -32602, "message": "Unknown tool: echo"}
    )


async def test_synthetic_unsupported_protocol_version(synthetic: Synthetic) -> None:
    synthetic.version = "2023-01-01"
    synthetic.on = {"tools/list": listed}
    with pytest.raises(McpFailure) as caught:
        await list_tools(McpServer("fake", synthetic.url), _config(synthetic))
    assert (
        caught.value.error["message"]
        == "MCP server 'fake': Unsupported protocol version from the server: 2023-01-01"
    )
    assert synthetic.posted("notifications/initialized") == []


async def test_synthetic_a_forgotten_session_is_replaced_once(synthetic: Synthetic) -> None:
    """The server forgot the kept session (404 to its id): the call runs once, on a new session."""
    synthetic.on = {"tools/list": listed, "tools/call": echoed}
    assert (await _call(synthetic, "one")).output == "one"
    synthetic.sessions.clear()  # a restart that kept the port
    assert (await _call(synthetic, "two")).output == "two"
    assert len(synthetic.posted("initialize")) == 2
    calls = [s[3]["params"]["arguments"]["text"] for s in synthetic.posted("tools/call")]
    assert calls == ["one", "two", "two"]  # the 404 one did not run; the second ran once
    # A session that is new and still answered 404: not replaced again, an error.
    synthetic.on["tools/call"] = _forgetting
    with pytest.raises(McpFailure) as caught:
        await _call(synthetic, "three")
    assert caught.value.error == {
        "type": "mcp_protocol_error",
        "code": 32600,
        "message": "MCP server 'fake': Session terminated",
    }


async def _forgetting(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    fake.sessions.clear()
    return web.Response(status=404)


async def _big(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.StreamResponse:
    text = "y" * body["params"]["arguments"]["size"]
    done = {"jsonrpc": "2.0", "id": body["id"], "result": {"content": [{"type": "text", "text": text}]}}
    if request.headers.get("x-json"):
        return web.json_response(done)
    return await sse(request, done)


@pytest.mark.parametrize("framing", ["sse", "json"])
async def test_synthetic_output_limits(synthetic: Synthetic, framing: str) -> None:
    """Over ``max_output_bytes``: an error the model reads; an answer so large it is not read to
    its end (over four times the limit and 1 MiB): the same. At the limit: the output."""
    from shim.hosted import sessions

    synthetic.on = {"tools/list": listed, "tools/call": _big}
    headers = {"x-json": "1"} if framing == "json" else {}
    config = _config(synthetic, max_output_bytes=1000)
    server = McpServer("fake", synthetic.url, headers)
    assert (await call_tool(server, "echo", {"size": 1000}, config)).output == "y" * 1000
    over = await call_tool(server, "echo", {"size": 1001}, config)
    assert over.error is not None and "(1001 bytes) is larger than this server allows (1000)" in json.dumps(
        over.error
    )
    huge = await call_tool(server, "echo", {"size": (sessions.max_body(config) + 1)}, config)
    assert huge.error is not None and huge.error["type"] == "mcp_tool_execution_error"
    assert f"(over {sessions.max_body(config)} bytes) is larger than this server allows (1000)" in json.dumps(
        huge.error
    )


async def _silent(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    await asyncio.sleep(60)
    raise AssertionError("unreachable")


async def test_synthetic_a_server_that_never_answers(synthetic: Synthetic) -> None:
    """The call timeout ends the call; the session is closed (DELETE), never kept."""
    synthetic.on = {"tools/list": listed, "tools/call": _silent}
    started = asyncio.get_running_loop().time()
    with pytest.raises(McpFailure) as caught:
        await _call(synthetic, call_timeout=0.5)
    assert caught.value.error == {
        "type": "http_error",
        "code": 504,
        "message": "MCP server 'fake' timed out.",
    }
    assert asyncio.get_running_loop().time() - started < 3
    for _ in range(50):
        if any(s[0] == "DELETE" for s in synthetic.seen):
            break
        await asyncio.sleep(0.05)
    assert [s[0] for s in synthetic.seen][-1] == "DELETE" and not synthetic.sessions


async def test_synthetic_a_cancelled_caller_ends_the_call(synthetic: Synthetic) -> None:
    synthetic.on = {"tools/list": listed, "tools/call": _silent}
    task = asyncio.create_task(_call(synthetic))
    for _ in range(100):
        if synthetic.posted("tools/call"):
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if not synthetic.sessions:
            break
        await asyncio.sleep(0.05)
    assert [s[0] for s in synthetic.seen][-1] == "DELETE" and not synthetic.sessions


def _redirect(to: str) -> Handler:
    async def handler(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
        if request.path != "/mcp":
            return answer(body, {"tools": [{**TOOL, "name": "moved"}]})
        raise web.HTTPTemporaryRedirect(to.format(port=fake.port))

    return handler


REDIRECTS = [
    ("within the origin and the list: followed", "/mcp-moved", None, ["/mcp", "/mcp-moved"]),
    ("within the origin, outside the list: never sent", "/admin", "not allowed", ["/mcp"]),
    ("another origin: not followed", "http://localhost:{port}/mcp-moved", "HTTP 307", ["/mcp"]),
]


@pytest.mark.parametrize(("case", "to", "refused", "paths"), REDIRECTS, ids=[c[0] for c in REDIRECTS])
async def test_synthetic_redirects(
    synthetic: Synthetic, case: str, to: str, refused: str | None, paths: list[str]
) -> None:
    synthetic.on = {"tools/list": _redirect(to)}
    server, config = McpServer("fake", synthetic.url), _config(synthetic)
    if refused is None:
        assert [t.name for t in await list_tools(server, config)] == ["moved"]
    else:
        with pytest.raises((McpFailure, McpServerNotAllowed)) as caught:
            await list_tools(server, config)
        if refused == "not allowed":
            assert isinstance(caught.value, McpServerNotAllowed)
            assert "outside the allow list" in caught.value.message
        else:
            assert isinstance(caught.value, McpFailure)
            assert caught.value.error == {
                "type": "http_error",
                "code": 307,
                "message": "MCP server 'fake' answered HTTP 307.",
            }
    listing = synthetic.posted("tools/list")
    assert [s[1] for s in listing] == paths
    assert all(s[3] == listing[0][3] for s in listing)  # the same message each time


_PROBE = """
import asyncio, sys
from shim.hosted.mcp_client import call_tool
from shim.hosted.servers import HostedConfig, McpServer
from shim.hosted import sessions

async def main():
    config = HostedConfig(allow=("http://127.0.0.1:*",))
    result = await call_tool(McpServer("demo", sys.argv[1]), "magic_word", {"word": "x"}, config)
    assert result.output == "magic-x-42", result
    await sessions.close_all()

asyncio.run(main())
print(sorted({name.split(".")[0] for name in sys.modules} & {"mcp", "pydantic", "anyio", "httpx_sse"}))
"""


@pytest.mark.parametrize(
    ("line", "loaded"), [("v1", []), ("v2", []), ("sse", ["anyio", "httpx_sse", "mcp", "pydantic"])]
)
def test_the_sdk_loads_only_for_the_sse_fallback(mcp: McpServers, line: str, loaded: list[str]) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, getattr(mcp, line)], cwd=root, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1].replace("'", '"')) == loaded


# -- the POST without ``ClientSession.request`` (``shim/hosted/poster.py``) ----------------------


def _keywords(function: object) -> dict[str, set[str]]:
    """Each method called in ``function``'s source (by attribute name) and the keywords passed."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            found.setdefault(name, set()).update(k.arg for k in node.keywords if k.arg)
    return found


def test_the_poster_makes_the_calls_the_session_makes() -> None:
    """``Poster.post`` mirrors ``ClientSession._request`` for a POST: a release of aiohttp that
    renames or drops one of those calls, or gives the parser a setting more, fails here first."""
    import ast
    import inspect
    import textwrap

    import aiohttp
    from aiohttp.client_proto import ResponseHandler

    from shim.hosted.poster import Poster

    ours, theirs = _keywords(Poster.post), _keywords(aiohttp.ClientSession._request)
    for call in ("connect", "set_response_params", "send", "start", "update_cookies_from_headers"):
        assert call in ours and call in theirs, call
    assert ours["set_response_params"] == theirs["set_response_params"]
    assert ours["connect"] == theirs["connect"] == {"traces", "timeout"}
    assert ours["ClientRequest"] <= set(inspect.signature(aiohttp.ClientRequest.__init__).parameters)
    assert (
        set(inspect.signature(ResponseHandler.set_response_params).parameters) - {"self"}
        == (ours["set_response_params"])
    )
    session_source = inspect.getsource(aiohttp.ClientSession._request)
    for piece in (
        "resp._raw_cookie_headers",
        "self._cookie_jar.filter_cookies(url)",
        "_timeout_ceil_threshold",
    ):
        assert piece in session_source, piece
    assert "retry_persistent_connection = (\n" in session_source  # a POST is never re-sent
    # The head written with the body (``_Head``): the writer writes through ``protocol.transport``
    # and ``send`` waits for nothing when there is no body to write (no traces).
    from aiohttp.http_writer import StreamWriter

    for method in (StreamWriter._write, StreamWriter._writelines):
        assert "transport = self._protocol.transport" in inspect.getsource(method)
    awaited = [
        n
        for n in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(aiohttp.ClientRequest.send))))
        if isinstance(n, ast.Await)
    ]
    assert [ast.unparse(n) for n in awaited] == ["await writer.write_headers(status_line, self.headers)"]
    assert "if self._on_headers_sent is not None:" in inspect.getsource(StreamWriter.write_headers)


async def _cookie(fake: Synthetic, body: dict[str, Any], request: web.Request) -> web.Response:
    out = answer(body, {"tools": [TOOL]})
    out.set_cookie("kept", "yes")
    return out


async def test_synthetic_posts_carry_what_the_session_would_send(synthetic: Synthetic) -> None:
    """The POSTs send the session's headers (the server's own beside the protocol's), the length,
    aiohttp's automatic headers, and a cookie the server set, as ``ClientSession.post`` did (the
    DELETE still goes through the session: the same headers either way)."""
    from shim.hosted import sessions

    synthetic.on = {"tools/list": _cookie, "tools/call": echoed}
    url = synthetic.url.replace("127.0.0.1", "localhost")  # aiohttp's jar keeps no cookie of an IP host
    server = McpServer("fake", url, {"X-Team": "blue", "accept": "overridden"})
    config = HostedConfig(
        allow=(f"http://localhost:{synthetic.port}/mcp*",), connect_timeout=3, call_timeout=3
    )
    await list_tools(server, config)
    result = await call_tool(server, "echo", {"text": "hi"}, config)
    assert result.output == "hi"
    await sessions.close_all()
    init, note, listing, call, delete = synthetic.seen
    for _, _, headers, body in (init, note, listing, call):
        assert headers["X-Team"] == "blue"
        assert headers["Accept"] == "application/json, text/event-stream"  # ours win, as merged before
        assert headers["Content-Length"] == str(len(json.dumps(body, separators=(",", ":"))))
        assert "User-Agent" in headers and "Accept-Encoding" in headers
    assert "Cookie" not in listing[2] and call[2]["Cookie"] == "kept=yes" == delete[2]["Cookie"]
    assert delete[2]["X-Team"] == "blue"

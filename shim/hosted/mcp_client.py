"""One MCP server, talked to with the official ``mcp`` SDK: list its tools, call one.

Each operation opens its own session (connect, ``initialize``, the operation, close): a turn may
wait minutes between calls, and a session held that long would need keep-alive and reconnects
for nothing. Streamable HTTP first; a server that refuses it (an HTTP error answering
``initialize``, as an SSE-only server built with an older SDK does) or whose URL ends in
``/sse`` is spoken to over the SSE transport. Both SDK lines' servers (``mcp`` 1.x ``FastMCP``,
2.x ``MCPServer``) answer these.

Bounds: ``connect_timeout`` covers connecting and ``initialize``; ``call_timeout`` one
``tools/list`` or ``tools/call``; a tool output over ``max_output_bytes`` becomes an error the
model sees. Every HTTP request goes through ``servers.Guard`` (no redirect or endpoint outside
the allow list). Cancelling the caller (a client that hung up) cancels the call.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from shim.errors import McpServerNotAllowed
from shim.hosted.servers import Guard, HostedConfig, McpServer
from shim.wire import responses as r

__all__ = ["McpFailure", "ToolResult", "call_tool", "list_tools"]

T = TypeVar("T")


class McpFailure(Exception):
    """The server could not be used for this operation. ``error`` is openai-python's
    ``McpToolCallError`` shape (``http_error`` or ``mcp_protocol_error``)."""

    def __init__(self, message: str, *, kind: str = "mcp_protocol_error", code: int = -32000) -> None:
        super().__init__(message)
        self.message = message
        self.error: dict[str, Any] = {"type": kind, "code": code, "message": message}


@dataclass(frozen=True)
class ToolResult:
    output: str | None  # the tool's text
    error: dict[str, Any] | None = None  # the tool failed: what the model is told


def _has(exc: BaseException | None, kind: type[BaseException], depth: int = 0) -> bool:
    """``kind`` anywhere in ``exc``: itself, inside its exception groups, or in its causes."""
    if exc is None or depth > 8:
        return False
    if isinstance(exc, kind):
        return True
    if isinstance(exc, BaseExceptionGroup) and any(_has(e, kind, depth + 1) for e in exc.exceptions):
        return True
    return _has(exc.__cause__ or exc.__context__, kind, depth + 1)


def _first_http_status(exc: BaseException) -> int | None:
    """The status of an ``httpx.HTTPStatusError`` anywhere in ``exc`` (the SDK raises them
    inside task groups, so they arrive wrapped in exception groups)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_http_status(inner)
            if found is not None:
                return found
    cause = exc.__cause__ or exc.__context__
    return _first_http_status(cause) if cause is not None and cause is not exc else None


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default context (certifi or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made once: each
    ``httpx.AsyncClient`` would load the CA bundle again, ~35 ms of CPU per session (issue 18)."""
    return httpx.create_ssl_context()


def _client(server: McpServer, guard: Guard, config: HostedConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=_tls(),
        headers=dict(server.headers),
        # Reads may wait a little longer than a call: the call's own timeout speaks first.
        timeout=httpx.Timeout(config.call_timeout + 5, connect=config.connect_timeout),
        follow_redirects=False,  # the SDK follows within the origin itself, through the guard
        event_hooks={"request": [guard]},
    )


async def _over_streamable(
    server: McpServer,
    guard: Guard,
    config: HostedConfig,
    op: Callable[[ClientSession], Awaitable[T]],
    opened: list[bool],
) -> T:
    async with (
        _client(server, guard, config) as http,
        streamable_http_client(server.url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        async with asyncio.timeout(config.connect_timeout):
            await session.initialize()
        opened.append(True)
        async with asyncio.timeout(config.call_timeout):
            return await op(session)


async def _over_sse(
    server: McpServer, guard: Guard, config: HostedConfig, op: Callable[[ClientSession], Awaitable[T]]
) -> T:
    def factory(
        headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None, auth: Any = None
    ) -> httpx.AsyncClient:
        return _client(server, guard, config)

    async with (
        sse_client(
            server.url,
            timeout=config.connect_timeout,
            sse_read_timeout=config.call_timeout,
            httpx_client_factory=factory,
        ) as (read, write),
        ClientSession(read, write) as session,
    ):
        async with asyncio.timeout(config.connect_timeout):
            await session.initialize()
        async with asyncio.timeout(config.call_timeout):
            return await op(session)


async def _run(server: McpServer, config: HostedConfig, op: Callable[[ClientSession], Awaitable[T]]) -> T:
    guard = Guard(server, config.allow)
    if not guard.permits(httpx.URL(server.url)):  # resolve_server checked; this is the last word
        raise McpServerNotAllowed(f"MCP server {server.label!r} is outside the allow list.")
    try:
        if httpx.URL(server.url).path.rstrip("/").endswith("/sse"):
            return await _over_sse(server, guard, config, op)
        opened: list[bool] = []
        try:
            return await _over_streamable(server, guard, config, op, opened)
        except Exception as exc:
            # Refused before a session opened (405, 404, an error answer): an SSE-only server.
            status = _first_http_status(exc)
            refused = _has(exc, McpError) or (status is not None and 400 <= status < 500)
            if opened or guard.refused is not None or not refused:
                raise
        return await _over_sse(server, guard, config, op)
    except McpFailure:
        raise
    except McpServerNotAllowed:
        raise
    except TimeoutError:
        raise McpFailure(f"MCP server {server.label!r} timed out.", kind="http_error", code=504) from None
    except Exception as exc:
        if guard.refused is not None:
            raise McpServerNotAllowed(f"MCP server {server.label!r}: {guard.refused}") from None
        if _has(exc, TimeoutError) or _has(exc, httpx.TimeoutException):
            raise McpFailure(f"MCP server {server.label!r} timed out.", kind="http_error", code=504) from None
        status = _first_http_status(exc)
        if status is not None:
            raise McpFailure(
                f"MCP server {server.label!r} answered HTTP {status}.", kind="http_error", code=status
            ) from None
        if isinstance(exc, McpError):
            raise McpFailure(
                f"MCP server {server.label!r}: {exc.error.message}", code=exc.error.code
            ) from None
        raise McpFailure(
            f"MCP server {server.label!r} is unreachable: {_reason(exc)}", kind="http_error", code=502
        ) from None


def _reason(exc: BaseException) -> str:
    """The innermost message of an exception group, without the server's internals."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:300]


async def list_tools(server: McpServer, config: HostedConfig) -> list[r.McpToolInfo]:
    async def op(session: ClientSession) -> list[r.McpToolInfo]:
        found: list[r.McpToolInfo] = []
        cursor: str | None = None
        while True:
            page = await session.list_tools(cursor) if cursor else await session.list_tools()
            for tool in page.tools:
                annotations = tool.annotations.model_dump(exclude_none=True) if tool.annotations else None
                found.append(
                    r.McpToolInfo(
                        name=tool.name,
                        input_schema=dict(tool.inputSchema),
                        description=tool.description,
                        annotations=annotations or None,
                    )
                )
            cursor = page.nextCursor
            if not cursor:
                return found

    return await _run(server, config, op)


def _text(content: list[Any]) -> str:
    """A result's content as the text the model reads: text blocks as they are, any other block
    (image, resource) as its JSON."""
    parts: list[str] = []
    for block in content:
        if getattr(block, "type", None) == "text":
            parts.append(block.text)
        else:
            parts.append(json.dumps(block.model_dump(mode="json", exclude_none=True)))
    return "\n".join(parts)


async def call_tool(
    server: McpServer, name: str, arguments: dict[str, Any], config: HostedConfig
) -> ToolResult:
    """The tool's answer; a failing tool is a ``ToolResult`` with ``error`` (the model sees it),
    a server that cannot be used an ``McpFailure``."""

    async def op(session: ClientSession) -> ToolResult:
        try:
            result = await session.call_tool(name, arguments)
        except McpError as exc:  # an unknown tool, bad arguments: the model is told
            return ToolResult(
                None, {"type": "mcp_protocol_error", "code": exc.error.code, "message": exc.error.message}
            )
        text = _text(list(result.content))
        if not text and result.structuredContent is not None:
            text = json.dumps(result.structuredContent)
        size = len(text.encode())
        if size > config.max_output_bytes:
            message = f"The tool's output ({size} bytes) is larger than this server allows ({config.max_output_bytes})."
            return ToolResult(
                None, {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": message}]}
            )
        if result.isError:
            blocks = [b.model_dump(mode="json", exclude_none=True) for b in result.content]
            return ToolResult(None, {"type": "mcp_tool_execution_error", "content": blocks})
        return ToolResult(text)

    return await _run(server, config, op)

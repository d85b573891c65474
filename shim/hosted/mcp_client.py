"""One MCP server: list its tools, call one.

Each operation takes an open session from ``sessions`` (one kept from an earlier operation with
the same server, credentials and bounds, else a new one: connect, ``initialize``); a session the
server has forgotten (404, "Session terminated") is replaced once, as the request did not run
there. Streamable HTTP first, spoken by the shim's own client (``streamable.py``); a server that
refuses it (an HTTP error answering ``initialize``, as an SSE-only server built with an older
SDK does) or whose URL ends in ``/sse`` is spoken to over the SSE transport by the ``mcp`` SDK.
Both SDK lines' servers (``mcp`` 1.x ``FastMCP``, 2.x ``MCPServer``) answer these.

Bounds: ``connect_timeout`` covers connecting and ``initialize``; ``call_timeout`` one
``tools/list`` or ``tools/call``; a tool output over ``max_output_bytes`` becomes an error the
model sees. Every HTTP request goes through ``servers.Guard`` (no redirect or endpoint outside
the allow list). Cancelling the caller (a client that hung up) cancels the call.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from shim.errors import McpServerNotAllowed
from shim.hosted import sessions
from shim.hosted.servers import Guard, HostedConfig, McpServer
from shim.hosted.sessions import Client, Closed, first_http_status, has
from shim.hosted.streamable import InvalidAnswer, RpcError, SessionGone, TooLarge
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


@functools.lru_cache(maxsize=256)
def _permitted(url: str, registered: bool, allow: tuple[str, ...]) -> bool:
    return Guard(McpServer("", url, registered=registered), allow).permits(httpx.URL(url))


async def _run(server: McpServer, config: HostedConfig, op: Callable[[Client], Awaitable[T]]) -> T:
    if not _permitted(server.url, server.registered, config.allow):  # resolve_server checked
        raise McpServerNotAllowed(f"MCP server {server.label!r} is outside the allow list.")
    fresh = False
    while True:
        session, reused = sessions.take(server, config, fresh=fresh)
        if reused:
            # Two turns of the loop first (the socket's readiness is read after the waiting
            # task runs, in the same turn): a connection the server closed while the session
            # was idle (its FIN arrived, not yet read) is dropped, not sent a request that
            # would fail. A request is never re-sent on its own: it may have run. Three when
            # the last answer's event stream has not ended yet: its end is read first.
            if session.unended():
                await asyncio.sleep(0)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        try:
            client = await session.opened()
            async with asyncio.timeout(config.call_timeout):
                result = await op(client)
        except Exception as exc:
            if reused and isinstance(exc, SessionGone):  # a kept session the server has forgotten:
                session.close()  # the request did not run there
                fresh = True
                continue
            # An HTTP error inside the SDK's transport reaches the operation as "Connection
            # closed": the session's own failure says what happened.
            failure = await session.ended(config.connect_timeout) if isinstance(exc, Closed) else None
            session.close()
            raise _mapped(server, session.guard, failure or exc) from None
        except BaseException:
            session.close()  # cancelled (a client that hung up): closing it stops the call
            raise
        session.give_back()
        return result


def _mapped(server: McpServer, guard: Guard, exc: BaseException) -> Exception:
    """What the hosted loop is told: ``McpServerNotAllowed`` or an ``McpFailure``."""
    if isinstance(exc, McpFailure | McpServerNotAllowed):
        return exc
    if guard.refused is not None:
        return McpServerNotAllowed(f"MCP server {server.label!r}: {guard.refused}")
    if has(exc, TimeoutError) or has(exc, httpx.TimeoutException):
        return McpFailure(f"MCP server {server.label!r} timed out.", kind="http_error", code=504)
    status = first_http_status(exc)
    if status is not None:
        return McpFailure(
            f"MCP server {server.label!r} answered HTTP {status}.", kind="http_error", code=status
        )
    if isinstance(exc, RpcError):
        return McpFailure(f"MCP server {server.label!r}: {exc.message}", code=exc.code)
    if isinstance(exc, InvalidAnswer):
        return McpFailure(f"MCP server {server.label!r}: {exc}", code=exc.code)
    sdk = sys.modules.get("mcp.shared.exceptions")  # loaded only with the SSE fallback
    if sdk is not None and isinstance(exc, sdk.McpError):
        return McpFailure(f"MCP server {server.label!r}: {exc.error.message}", code=exc.error.code)
    return McpFailure(
        f"MCP server {server.label!r} is unreachable: {_reason(exc)}", kind="http_error", code=502
    )


def _reason(exc: BaseException) -> str:
    """The innermost message of an exception group, without the server's internals."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:300]


def _info(tool: dict[str, Any]) -> r.McpToolInfo:
    annotations = tool.get("annotations")
    if isinstance(annotations, dict):
        annotations = {k: v for k, v in annotations.items() if v is not None} or None
    else:
        annotations = None
    description = tool.get("description")
    return r.McpToolInfo(
        name=tool["name"],
        input_schema=dict(tool["inputSchema"]),
        description=description if isinstance(description, str) else None,
        annotations=annotations,
    )


async def list_tools(server: McpServer, config: HostedConfig) -> list[r.McpToolInfo]:
    async def op(client: Client) -> list[r.McpToolInfo]:
        found: list[r.McpToolInfo] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor)
            found.extend(_info(tool) for tool in page["tools"])
            cursor = page.get("nextCursor")
            if not cursor:
                return found

    return await _run(server, config, op)


def _block(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if v is not None}


def _text(content: list[dict[str, Any]]) -> str:
    """A result's content as the text the model reads: text blocks as they are, any other block
    (image, resource) as its JSON."""
    parts: list[str] = []
    for block in content:
        text = block.get("text")
        if block.get("type") == "text" and isinstance(text, str):
            parts.append(text)
        else:
            parts.append(json.dumps(_block(block)))
    return "\n".join(parts)


def _too_large(size: str, limit: int) -> ToolResult:
    message = f"The tool's output ({size} bytes) is larger than this server allows ({limit})."
    return ToolResult(
        None, {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": message}]}
    )


async def call_tool(
    server: McpServer, name: str, arguments: dict[str, Any], config: HostedConfig
) -> ToolResult:
    """The tool's answer; a failing tool is a ``ToolResult`` with ``error`` (the model sees it),
    a server that cannot be used an ``McpFailure``."""

    async def op(client: Client) -> ToolResult:
        try:
            result = await client.call_tool(name, arguments)
        except TooLarge as exc:  # not read to its end: the output is larger still
            return _too_large(f"over {exc.limit}", config.max_output_bytes)
        except RpcError as exc:  # an unknown tool, bad arguments: the model is told
            if isinstance(exc, SessionGone | Closed):  # not the tool's answer: the session's
                raise
            return ToolResult(None, {"type": "mcp_protocol_error", "code": exc.code, "message": exc.message})
        content = result["content"]
        text = _text(content)
        if not text and result.get("structuredContent") is not None:
            text = json.dumps(result["structuredContent"])
        size = len(text.encode())
        if size > config.max_output_bytes:
            return _too_large(str(size), config.max_output_bytes)
        if result.get("isError"):
            return ToolResult(
                None, {"type": "mcp_tool_execution_error", "content": [_block(b) for b in content]}
            )
        return ToolResult(text)

    return await _run(server, config, op)

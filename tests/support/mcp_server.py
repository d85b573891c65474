"""A real MCP server for the hosted-tool tests, runnable under either SDK line: ``mcp`` 1.x
(``FastMCP``) or 2.x (``MCPServer``). ``python tests/support/mcp_server.py PORT [TRANSPORT]``
serves over ``streamable-http`` (default, at ``/mcp``) or ``sse`` (1.x only, at ``/events``).

Its tools compute their answers, so seeing an answer proves the server ran:
``magic_word("San Francisco")`` is ``"magic-san-francisco-42"``. ``header_names`` says which
headers arrived without ever echoing their values (the header-isolation test looks for the value
everywhere else).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Literal

try:  # mcp 2.x
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver import MCPServer as Server

    SDK = 2
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import Context  # type: ignore[no-redef]
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]

    SDK = 1

from mcp.types import ToolAnnotations

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
TRANSPORT = sys.argv[2] if len(sys.argv) > 2 else "streamable-http"

# SSE at /events (not /sse): the client must find it by falling back from streamable HTTP.
server: Any = Server("demo") if SDK == 2 else Server("demo", host="127.0.0.1", port=PORT, sse_path="/events")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def magic_word(word: str) -> str:
    """Turn a word into its magic word."""
    return f"magic-{'-'.join(word.lower().split())}-{6 * 7}"


@server.tool()
def delete_file(path: str) -> str:
    """Delete a file (the tests ask for approval before this one)."""
    return f"deleted {path}"


@server.tool()
def fail_tool(reason: str) -> str:
    """Always fails with the reason given."""
    raise ValueError(f"failed on purpose: {reason}")


@server.tool()
def big_output(size: int) -> str:
    """Returns `size` bytes."""
    return "x" * size


@server.tool()
async def slow(pace: Literal["slow", "quick"]) -> str:
    """Sleeps (30 s when slow, 0.1 s when quick), then answers."""
    await asyncio.sleep(30 if pace == "slow" else 0.1)
    return f"slept ({pace})"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def header_names(ctx: Context) -> str:  # type: ignore[type-arg]
    """The names of the request's ``x-*`` headers (their values are never shown)."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None) or {}
    return ",".join(sorted(k.lower() for k in headers if k.lower().startswith("x-")))


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def search(query: str) -> str:
    """Search the web (a fixed index: two results per query)."""
    slug = "-".join(query.lower().split())[:40] or "empty"
    return (
        f"1. {query} explained - https://docs.example.test/{slug}\n"
        f"2. More about {query} - https://wiki.example.test/{slug}"
    )


if __name__ == "__main__":
    if SDK == 2:
        server.run(transport=TRANSPORT, host="127.0.0.1", port=PORT)
    else:
        server.run(transport=TRANSPORT)

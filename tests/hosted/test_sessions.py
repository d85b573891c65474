"""What an MCP operation costs the shim beyond its requests (issue 18): the TLS context is made
once per process, not per session."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from tests.support.mcp_servers import McpServers


async def test_the_tls_context_is_made_once(mcp: McpServers, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``httpx.AsyncClient`` loaded the CA bundle again (~35 ms of CPU a session)."""
    from shim.hosted import mcp_client, sessions
    from shim.hosted.servers import HostedConfig, McpServer

    made: list[int] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    sessions._tls.cache_clear()
    await sessions.close_all()
    config = HostedConfig(allow=("http://127.0.0.1:*",))
    for n in range(3):  # other headers each time: three sessions, none kept for another
        server = McpServer("demo", mcp.v1, {"x-n": str(n)})
        listed = await mcp_client.list_tools(server, config)
        assert "magic_word" in [t.name for t in listed]
        result = await mcp_client.call_tool(server, "magic_word", {"word": "x"}, config)
        assert result.output == "magic-x-42"
    assert len(made) == 1
    await sessions.close_all()

"""What an MCP operation costs the shim beyond its requests (issue 18): the TLS context is made
once per process, not per session."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from tests.support.mcp_servers import McpServers


async def test_the_tls_context_is_made_once(mcp: McpServers, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``httpx.AsyncClient`` loaded the CA bundle again (~35 ms of CPU a session)."""
    from shim.hosted import mcp_client, sessions, streamable
    from shim.hosted.servers import HostedConfig, McpServer

    made: list[int] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    streamable.tls.cache_clear()
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


def _config(**bounds: Any) -> Any:
    from shim.hosted.servers import HostedConfig

    return HostedConfig(**{"allow": ("http://127.0.0.1:*",), **bounds})


def _opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The labels of the sessions opened from now on."""
    from shim.hosted import sessions

    opened: list[str] = []
    real = sessions._Session.__init__

    def counting(self: Any, pool: Any, key: Any, server: Any, config: Any) -> None:
        opened.append(server.label)
        real(self, pool, key, server, config)

    monkeypatch.setattr(sessions._Session, "__init__", counting)
    return opened


async def test_a_session_is_kept_for_the_next_operation(
    mcp: McpServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shim.hosted.mcp_client import call_tool, list_tools
    from shim.hosted.servers import McpServer

    opened = _opened(monkeypatch)
    config = _config()
    server = McpServer("demo", mcp.v2)
    for word in ("a", "b", "c"):
        assert "magic_word" in [t.name for t in await list_tools(server, config)]
        assert (await call_tool(server, "magic_word", {"word": word}, config)).output == f"magic-{word}-42"
    assert opened == ["demo"]
    # Another label, other timeouts or another allow list: a session of its own.
    await list_tools(McpServer("other", mcp.v2), config)
    await list_tools(server, _config(call_timeout=7))
    await list_tools(server, _config(allow=("http://127.0.0.1:*/mcp",)))
    assert opened == ["demo", "other", "demo", "demo"]


async def test_headers_never_ride_another_clients_session(
    mcp: McpServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each client's own headers reach the server on each call, whatever came before."""
    from shim.hosted.mcp_client import call_tool
    from shim.hosted.servers import McpServer

    opened = _opened(monkeypatch)
    config = _config()
    alpha = McpServer("demo", mcp.v1, {"x-alpha": "secret-a"})
    beta = McpServer("demo", mcp.v1, {"x-beta": "secret-b"})
    plain = McpServer("demo", mcp.v1)
    seen = [
        (await call_tool(who, "header_names", {}, config)).output for who in (alpha, beta, plain, alpha, beta)
    ]
    assert seen == ["x-alpha", "x-beta", '{"result": ""}', "x-alpha", "x-beta"]  # none: the structured form
    assert len(opened) == 3


async def test_concurrent_operations_take_sessions_of_their_own(
    mcp: McpServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from shim.hosted import sessions
    from shim.hosted.mcp_client import call_tool
    from shim.hosted.servers import McpServer

    opened = _opened(monkeypatch)
    config = _config()
    server = McpServer("demo", mcp.v1)
    words = [f"w{n}" for n in range(6)]
    results = await asyncio.gather(*(call_tool(server, "magic_word", {"word": w}, config) for w in words))
    assert [r.output for r in results] == [f"magic-{w}-42" for w in words]
    assert 1 < len(opened) <= len(words)
    kept = sessions._POOL.idle[sessions.key_of(server, config)]
    assert len(kept) == min(len(opened), sessions.PER_KEY)  # the rest were closed


async def test_a_timed_out_call_closes_its_session(mcp: McpServers, monkeypatch: pytest.MonkeyPatch) -> None:
    from shim.hosted import sessions
    from shim.hosted.mcp_client import McpFailure, call_tool
    from shim.hosted.servers import McpServer

    opened = _opened(monkeypatch)
    config = _config(call_timeout=0.5)
    server = McpServer("demo", mcp.v1)
    assert (await call_tool(server, "magic_word", {"word": "a"}, config)).output == "magic-a-42"
    with pytest.raises(McpFailure) as caught:
        await call_tool(server, "slow", {"pace": "slow"}, config)
    assert caught.value.error == {
        "type": "http_error",
        "code": 504,
        "message": "MCP server 'demo' timed out.",
    }
    assert sessions.key_of(server, config) not in sessions._POOL.idle  # not kept
    assert (await call_tool(server, "magic_word", {"word": "b"}, config)).output == "magic-b-42"
    assert opened == ["demo", "demo"]


async def test_idle_sessions_close(mcp: McpServers, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from shim.hosted import sessions
    from shim.hosted.mcp_client import list_tools
    from shim.hosted.servers import McpServer

    monkeypatch.setattr(sessions, "IDLE", 0.2)
    opened = _opened(monkeypatch)
    server, config = McpServer("demo", mcp.v1), _config()
    await list_tools(server, config)
    (kept,) = sessions._POOL.idle[sessions.key_of(server, config)]
    await asyncio.sleep(1.5)  # the sweep runs IDLE + 0.5 s after the session came back
    assert kept.task.done() and kept.failure is None  # closed, cleanly
    assert sessions.key_of(server, config) not in sessions._POOL.idle
    await list_tools(server, config)
    assert opened == ["demo", "demo"]


async def test_one_sweep_timer_closes_sessions_idle_at_different_times(
    mcp: McpServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pending sweep per loop: it closes the session idle long enough and is armed again for
    the one given back later, which it closes in its turn."""
    import asyncio

    from shim.hosted import sessions
    from shim.hosted.mcp_client import list_tools
    from shim.hosted.servers import McpServer

    monkeypatch.setattr(sessions, "IDLE", 1.0)  # a sweep 1.5 s after the first given back
    first, second = McpServer("demo", mcp.v1), McpServer("demo", mcp.v1, {"x-client": "2"})
    config = _config()
    await list_tools(first, config)
    await asyncio.sleep(0.8)
    await list_tools(second, config)
    assert len(sessions._POOL.sweeps) == 1
    await asyncio.sleep(1.1)  # the sweep ran: the first idle 1.5 s, the second at most 0.7
    assert sessions.key_of(first, config) not in sessions._POOL.idle
    assert sessions.key_of(second, config) in sessions._POOL.idle
    await asyncio.sleep(1.3)  # armed again for 1.5 s after the second came back
    assert sessions.key_of(second, config) not in sessions._POOL.idle
    assert not sessions._POOL.sweeps


async def test_a_restarted_server_gets_a_new_session(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept session died with the server: the next operation opens a new one and succeeds."""
    import socket
    import sys
    import time

    from shim.hosted.mcp_client import call_tool
    from shim.hosted.servers import McpServer
    from tests.support.mcp_servers import SCRIPT
    from tests.support.processes import free_port, spawn, stop

    port = free_port()

    def serve() -> Any:
        proc = spawn([sys.executable, str(SCRIPT), str(port), "streamable-http"], tmp_path / "mcp.log")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return proc
            except OSError:
                time.sleep(0.1)
        stop(proc)
        raise AssertionError("the MCP server did not start")

    opened = _opened(monkeypatch)
    server, config = McpServer("demo", f"http://127.0.0.1:{port}/mcp"), _config()
    proc = serve()
    try:
        assert (await call_tool(server, "magic_word", {"word": "a"}, config)).output == "magic-a-42"
    finally:
        stop(proc)
    proc = serve()
    try:
        assert (await call_tool(server, "magic_word", {"word": "b"}, config)).output == "magic-b-42"
    finally:
        stop(proc)
    assert opened == ["demo", "demo"]


async def test_a_session_the_server_ended_is_replaced(
    mcp: McpServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server forgot the kept session (it answers 404): the call runs once, on a new one."""
    import httpx

    from shim.hosted import mcp_client, sessions
    from shim.hosted.servers import McpServer

    opened = _opened(monkeypatch)
    server, config = McpServer("demo", mcp.v1), _config()
    assert (await mcp_client.call_tool(server, "magic_word", {"word": "a"}, config)).output == "magic-a-42"
    (kept,) = sessions._POOL.idle[sessions.key_of(server, config)]
    async with httpx.AsyncClient() as http:
        ended = await http.delete(mcp.v1, headers={"mcp-session-id": str(kept.session_id())})
    assert ended.status_code == 200
    gone: list[int] = []
    real = sessions._Session.close

    def closing(self: Any) -> None:
        gone.append(1)
        real(self)

    monkeypatch.setattr(sessions._Session, "close", closing)
    assert kept.usable
    assert (await mcp_client.call_tool(server, "magic_word", {"word": "b"}, config)).output == "magic-b-42"
    assert opened == ["demo", "demo"] and gone  # the forgotten one closed, a new one used
    assert sessions._POOL.idle[sessions.key_of(server, config)][0] is not kept


async def test_the_apps_shutdown_closes_kept_sessions(mcp: McpServers) -> None:
    import httpx

    from shim.hosted import sessions
    from tests.hosted.conftest import build
    from tests.hosted.test_mcp_loop import mcp_tool

    shim = build()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(shim.app), base_url="http://shim") as client:
        body = {"model": "m", "input": "hi", "tools": [mcp_tool(mcp.v1)]}
        assert (await client.post("/v1/responses", json=body)).status_code == 200
    kept = [s for idle in sessions._POOL.idle.values() for s in idle]
    assert kept and not any(s.task.done() for s in kept)
    for hook in shim.app.on_shutdown:
        await hook()
    assert all(s.task.done() and s.failure is None for s in kept)  # closed cleanly, each
    assert not sessions._POOL.idle and not sessions._POOL.open

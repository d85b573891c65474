"""Hosted-tool tests: the in-process shim over the scripted upstream, with real MCP servers
(``tests/support/mcp_servers.py``) started once for the module run."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.http.app import create_app
from shim.settings import McpServer, Route, ServerSettings, Settings, WebSearchProvider
from shim.upstream.client import UpstreamClient
from tests.server.harness import UPSTREAM_URL, Shim, Upstream
from tests.support.live_fixtures import spans
from tests.support.live_shim import isolated_env
from tests.support.mcp_servers import McpServers, running_mcp_servers

__all__ = ["build", "spans"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolated_env(monkeypatch, tmp_path)


@pytest.fixture(autouse=True)
async def _sessions_closed() -> AsyncIterator[None]:
    """Kept MCP sessions closed at each test's end, as the app's shutdown does (an in-process
    app driven through ``httpx.ASGITransport`` never runs its lifespan)."""
    yield
    if (sessions := sys.modules.get("shim.hosted.sessions")) is not None:
        await sessions.close_all()


@pytest.fixture(scope="session")
def mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpServers]:
    with running_mcp_servers(tmp_path_factory.mktemp("mcp")) as servers:
        yield servers


def build(
    *,
    allow: tuple[str, ...] = ("http://127.0.0.1:*",),
    servers: tuple[McpServer, ...] = (),
    web_search: WebSearchProvider | None = None,
    store: str = "memory://",
    target: Any = None,
    routes_override: tuple[Route, ...] | None = None,
    **server: Any,
) -> Shim:
    settings = Settings(
        server=ServerSettings(store=store, mcp_allow=allow, mcp_connect_timeout=5, **server),
        routes=routes_override or (Route(upstream=UPSTREAM_URL),),
        mcp_servers=servers,
        web_search=web_search,
    )
    upstream = Upstream() if target is None else Upstream(target)
    client = UpstreamClient(settings.server.timeouts, settings.server.retries, transport=upstream)
    return Shim(create_app(settings, upstream=client), upstream, client, settings)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Shim], httpx.AsyncClient]]:
    opened: list[tuple[httpx.AsyncClient, Shim]] = []

    def _connect(shim: Shim) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(shim.app), base_url="http://shim", timeout=60
        )
        opened.append((client, shim))
        return client

    yield _connect
    for client, shim in opened:
        await client.aclose()
        await shim.client.aclose()

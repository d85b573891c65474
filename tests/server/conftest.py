"""Fixtures for the in-process server tests: no sockets, no home directory.

``shim`` is the default app (one catch-all ``openai`` route over the scripted upstream) and
``client`` an httpx client driving it. Tests that need other settings or a fault upstream call
``make_shim(...)`` (see ``harness.build_shim``) and ``connect(shim)``; a test can also swap the
upstream of any shim with ``shim.upstream.use(app_or_transport)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tests.server.harness import Shim, build_shim


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHIM_SECRET", "test-secret")
    monkeypatch.setenv("SHIM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in ("SHIM_API_KEYS", "SHIM_CONFIG", "SHIM_UPSTREAM_URL", "SHIM_STORE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_shim() -> Callable[..., Shim]:
    return build_shim


@pytest.fixture
def shim() -> Shim:
    return build_shim()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Shim], httpx.AsyncClient]]:
    """``connect(shim)``: an in-process client; it and the shim's upstream client close after the test."""
    opened: list[tuple[httpx.AsyncClient, Shim]] = []

    def _connect(shim: Shim) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(shim.app), base_url="http://shim")
        opened.append((client, shim))
        return client

    yield _connect
    for client, shim in opened:
        await client.aclose()
        await shim.client.aclose()


@pytest.fixture
async def client(shim: Shim, connect: Callable[[Shim], httpx.AsyncClient]) -> httpx.AsyncClient:
    return connect(shim)

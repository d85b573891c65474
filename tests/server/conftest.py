"""Fixtures for the in-process server tests: no sockets, no home directory.

``shim`` is the default app (one catch-all ``openai`` route over the scripted upstream) and
``client`` an httpx client driving it. Tests that need other settings or a fault upstream call
``make_shim(...)`` (see ``harness.build_shim``) and ``connect(shim)``; ``sdk`` is the ``openai``
SDK over ``shim``; a test can also swap the
upstream of any shim with ``shim.upstream.use(app_or_transport)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.harness import Shim, build_shim
from tests.server.openai_sdk import openai_sdk
from tests.support.live_shim import isolated_env


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolated_env(monkeypatch, tmp_path)


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


@pytest.fixture
async def sdk(shim: Shim) -> AsyncIterator[Any]:
    """The real ``openai`` SDK over ``shim`` (the modules using it ``importorskip`` openai first)."""
    async with openai_sdk(shim) as client:
        yield client

"""The real ``openai`` SDK over a ``Shim``, in-process.

openai 3.x talks through the ``httpx2`` package, so its ``http_client`` must be an
``httpx2.AsyncClient``; ``httpx2.ASGITransport`` drives the Litestar app without a socket.
The test modules ``importorskip`` both packages before they use this.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.server.harness import Shim


@asynccontextmanager
async def openai_sdk(shim: Shim) -> AsyncIterator[Any]:
    """An ``openai.AsyncOpenAI`` talking to ``shim.app`` (key ``sk-test``, no retries); on exit it
    closes the SDK client and the shim's own client."""
    openai, httpx2 = importlib.import_module("openai"), importlib.import_module("httpx2")
    http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=shim.app))
    client = openai.AsyncOpenAI(
        base_url="http://shim/v1", api_key="sk-test", http_client=http_client, max_retries=0
    )
    try:
        yield client
    finally:
        await client.close()
        await shim.client.aclose()

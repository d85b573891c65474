"""A shim app over real loopback upstreams, for the fault, limit and operations suites.

``LiveShim`` builds the app exactly as ``shim serve`` does (``create_app`` with its own httpx
client), pointed at a URL such as a ``FaultUpstream``; ``client`` drives it in-process over ASGI.
``isolated_env`` keeps each test away from the real home directory and environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from shim.http.app import create_app
from shim.http.state import app_state
from shim.settings import Route, ServerSettings, Settings

__all__ = ["LiveShim", "isolated_env"]


def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHIM_SECRET", "test-secret")
    monkeypatch.setenv("SHIM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in ("SHIM_API_KEYS", "SHIM_CONFIG", "SHIM_UPSTREAM_URL", "SHIM_STORE"):
        monkeypatch.delenv(name, raising=False)


class LiveShim:
    def __init__(self, upstream: str, *, route: dict[str, Any] | None = None, **server: Any) -> None:
        server.setdefault("store", "memory://")
        server.setdefault("retries", 0)
        self.settings = Settings(
            server=ServerSettings(**server),
            routes=(Route(upstream=upstream, **(route or {})),),
        )
        self.app: Litestar = create_app(self.settings)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(self.app), base_url="http://shim", timeout=30.0
        )

    async def aclose(self) -> None:
        await self.client.aclose()
        await app_state(self.app).turns.upstream.aclose()

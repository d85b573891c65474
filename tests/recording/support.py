"""A shim recording its exchanges over an in-process scripted upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
from litestar import Litestar

from shim.fixtures.recorder import Recorder
from shim.http.app import create_app
from shim.http.state import app_state
from shim.settings import RecordSettings, Route, ServerSettings, Settings, Timeouts
from shim.upstream.client import UpstreamClient

UPSTREAM_URL = "http://upstream.test/v1"


class RecordingShim:
    """``create_app`` as ``shim serve --record DIR`` builds it, its upstream an ASGI app."""

    def __init__(
        self, upstream_app: Any, record: Path | None, *, route: dict[str, Any], **server: Any
    ) -> None:
        server.setdefault("store", "memory://")
        server.setdefault("retries", 0)
        record_settings = RecordSettings(dir=str(record) if record else "")
        self.settings = Settings(
            server=ServerSettings(record=record_settings, **server),
            routes=(Route(upstream=UPSTREAM_URL, **route),),
        )
        self.upstream = UpstreamClient(Timeouts(), 0, transport=httpx.ASGITransport(upstream_app))
        self.app: Litestar = create_app(self.settings, upstream=self.upstream)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(self.app), base_url="http://shim", timeout=30
        )

    @property
    def recorder(self) -> Recorder:
        recorder = app_state(self.app).recorder
        assert recorder is not None, "recording or the inspector is on"
        return recorder

    async def written(self) -> None:
        """Wait until every queued exchange is on disk."""
        if self.recorder.queue is not None:
            await self.recorder.queue.join()

    async def aclose(self) -> None:
        if app_state(self.app).recorder is not None:  # None when recording and the inspector are off
            await self.recorder.aclose()
        await self.client.aclose()
        await self.upstream.aclose()


def replace_record(settings: RecordSettings, **changes: Any) -> RecordSettings:
    return msgspec.structs.replace(settings, **changes)

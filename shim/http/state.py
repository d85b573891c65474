"""The app's typed state: built once by ``create_app`` (the composition root), read through
``app_state`` — the one place that looks into Litestar's untyped ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Litestar

from shim.fixtures.recorder import Recorder
from shim.http.ratelimit import RateLimiter
from shim.settings import Settings
from shim.telemetry import Metrics
from shim.turns.background import BackgroundRunner
from shim.turns.context import TurnContext

__all__ = ["STATE_KEY", "AppState", "app_state"]

STATE_KEY = "shim"


@dataclass(frozen=True)
class AppState:
    settings: Settings
    turns: TurnContext
    background: BackgroundRunner
    metrics: Metrics
    recorder: Recorder | None = None  # shim serve --record, /inspector (http/inspector.py)
    limiter: RateLimiter | None = None  # [server.rate_limits] (http/ratelimit.py)


def app_state(app: Litestar | Any) -> AppState:
    state = app.state[STATE_KEY]
    assert isinstance(state, AppState), "create_app puts the AppState there"
    return state

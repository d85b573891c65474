"""uvicorn's own access line: off unless its log level would print it (INFO or below), so that
uvicorn does not build its arguments for every request only for its logger to drop them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from shim.cli import command
from shim.settings import Route, ServerSettings, Settings
from tests.support.live_shim import isolated_env


@pytest.mark.parametrize(
    ("level", "on"),
    [("trace", True), ("debug", True), ("info", True), ("INFO", True), ("warning", False), ("error", False)],
)
def test_uvicorn_access_log_only_where_it_would_print(
    level: str, on: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolated_env(monkeypatch, tmp_path)
    monkeypatch.setenv("SHIM_LOG_LEVEL", level)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    settings = Settings(server=ServerSettings(store="none"), routes=(Route(upstream="http://up.test/v1"),))
    args = argparse.Namespace(loop="asyncio", http="h11")
    assert command._run(args, settings, 1, None) == 0
    assert seen["log_level"] == level.lower()
    assert seen["access_log"] is on

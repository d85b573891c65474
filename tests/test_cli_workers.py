"""``shim serve --workers N``: the flags parse, and a worker rebuilds the same settings from the environment."""

from __future__ import annotations

import msgspec
import pytest

from shim.cli.command import app_from_env, build_parser
from shim.http.state import app_state
from shim.settings import load_settings

CASES = [
    ([], (None, "auto", "auto")),
    (["--workers", "2"], (2, "auto", "auto")),
    (["--workers", "4", "--loop", "asyncio", "--http", "h11"], (4, "asyncio", "h11")),
    (["--loop", "uvloop", "--http", "httptools"], (None, "uvloop", "httptools")),
]


@pytest.mark.parametrize(("argv", "expected"), CASES)
def test_serve_flags(argv: list[str], expected: tuple[int | None, str, str]) -> None:
    args = build_parser().parse_args(["serve", "--upstream", "http://u/v1", *argv])
    assert (args.workers, args.loop, args.http) == expected


@pytest.mark.parametrize("bad", [["--loop", "tokio"], ["--http", "h2"], ["--workers", "two"]])
def test_serve_rejects_bad_flags(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", *bad])


def test_worker_app_gets_the_parent_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(upstream="http://127.0.0.1:9/v1", kind="responses", port=8123, store="memory://")
    monkeypatch.setenv("SHIM_SETTINGS_JSON", msgspec.json.encode(settings).decode())
    monkeypatch.setenv("SHIM_SECRET", "test-secret")
    app = app_from_env()
    assert app_state(app).settings == settings
    assert app_state(app).settings.routes[0].kind == "responses"

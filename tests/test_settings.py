"""Settings from the environment: every [server] value has a SHIM_* variable, flags win over it.

The Docker image is configured through its environment alone, so each table row sets one
variable and checks it reached the setting; bad values name the variable that holds them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from shim.settings import load_settings

ENV_TABLE = {
    "retries": ("SHIM_RETRIES", "5", lambda s: s.server.retries, 5),
    "retry max wait": ("SHIM_RETRY_MAX_WAIT", "2.5", lambda s: s.server.retry_max_wait, 2.5),
    "body size": ("SHIM_MAX_BODY_BYTES", "1024", lambda s: s.server.max_body_bytes, 1024),
    "shutdown": ("SHIM_SHUTDOWN_TIMEOUT", "3", lambda s: s.server.shutdown_timeout, 3.0),
    "diagnostics": ("SHIM_DIAGNOSTICS", "error", lambda s: s.server.diagnostics, "error"),
    "connect timeout": ("SHIM_TIMEOUT_CONNECT", "1.5", lambda s: s.server.timeouts.connect, 1.5),
    "idle timeout": ("SHIM_TIMEOUT_IDLE", "9", lambda s: s.server.timeouts.idle, 9.0),
    "total timeout": ("SHIM_TIMEOUT_TOTAL", "60", lambda s: s.server.timeouts.total, 60.0),
    "input items": ("SHIM_LIMIT_MAX_INPUT_ITEMS", "10", lambda s: s.server.limits.max_input_items, 10),
    "store ttl": ("SHIM_STORE_TTL", "60", lambda s: s.server.store_ttl, 60.0),
    "background lease": ("SHIM_BACKGROUND_LEASE", "2.5", lambda s: s.server.background_lease, 2.5),
    "websocket cache": (
        "SHIM_LIMIT_WEBSOCKET_CACHE_ENTRIES",
        "4",
        lambda s: s.server.limits.websocket_cache_entries,
        4,
    ),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SHIM_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("case", ENV_TABLE.values(), ids=ENV_TABLE.keys())
def test_environment_sets_the_server_section(monkeypatch: pytest.MonkeyPatch, case: tuple[Any, ...]) -> None:
    name, value, read, expected = case
    assert read(load_settings()) != expected, "the row must change a default"
    monkeypatch.setenv(name, value)
    assert read(load_settings()) == expected


def test_environment_overrides_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "shim.toml"
    config.write_text("[server]\nretries = 1\n[server.timeouts]\nidle = 2.0\n")
    assert load_settings(config=config).server.retries == 1
    monkeypatch.setenv("SHIM_RETRIES", "4")
    monkeypatch.setenv("SHIM_PORT", "9999")
    settings = load_settings(config=config, port=7000)
    assert settings.server.retries == 4
    assert settings.server.timeouts.idle == 2.0  # untouched values keep the file's
    assert settings.server.port == 7000  # a flag beats the variable


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHIM_RETRIES", "many"),
        ("SHIM_TIMEOUT_IDLE", "soon"),
        ("SHIM_LIMIT_MAX_TOOLS", "1.5"),
        ("SHIM_BACKGROUND_LEASE", "0"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"^{name}: Expected"):
        load_settings()


def test_route_defaults_for_small_models_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "shim.toml"
    config.write_text(
        '[[routes]]\nupstream = "http://u/v1"\nstop = ["\\n"]\nmax_tool_rounds = 1\n[[routes]]\nupstream = "http://v/v1"\n'
    )
    first, second = load_settings(config=config).routes
    assert (first.stop, first.max_tool_rounds) == (("\n",), 1)
    assert (second.stop, second.max_tool_rounds) == ((), None)  # unset: no stop, no loop guard


@pytest.mark.parametrize(
    "line", ["max_tool_rounds = -1", 'stop = "\\n"', "max_tool_rounds = 1.5", "temperature = 3"]
)
def test_a_bad_route_value_names_the_file_and_key(tmp_path: Path, line: str) -> None:
    config = tmp_path / "shim.toml"
    config.write_text(f'[[routes]]\nupstream = "http://u/v1"\n{line}\n')
    with pytest.raises(ValueError, match=r"shim\.toml: .*routes\[0\]\.(max_tool_rounds|stop|temperature)"):
        load_settings(config=config)

"""The hosted-tool settings: environment, config file, and what start-up refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.settings import load_settings


def test_mcp_allow_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIM_MCP_ALLOW", "https://a.example/*, http://127.0.0.1:*/mcp")
    monkeypatch.setenv("SHIM_MCP_CALL_TIMEOUT", "5")
    server = load_settings(upstream="http://u.test/v1").server
    assert server.mcp_allow == ("https://a.example/*", "http://127.0.0.1:*/mcp")
    assert server.mcp_call_timeout == 5.0


def test_servers_and_web_search_from_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIM_MCP_ALLOW", raising=False)
    config = tmp_path / "shim.toml"
    config.write_text(
        '[[mcp_servers]]\nlabel = "searx"\nurl = "http://127.0.0.1:9/mcp"\nheaders = { X-Key = "k" }\n'
        '[web_search]\nserver = "searx"\n'
    )
    settings = load_settings(config=config, upstream="http://u.test/v1")
    assert settings.mcp_servers[0].headers == {"X-Key": "k"}
    assert settings.web_search is not None and settings.web_search.tool == "search"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[mcp_servers]]\nlabel = "a"\nurl = "file:///x"\n', "url must be http"),
        (
            '[[mcp_servers]]\nlabel = "a"\nurl = "http://x"\n[[mcp_servers]]\nlabel = "a"\nurl = "http://y"\n',
            "unique",
        ),
        ('[web_search]\nserver = "nowhere"\n', "names no [[mcp_servers]]"),
    ],
)
def test_refused_at_start(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "shim.toml"
    config.write_text(toml)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(config=config, upstream="http://u.test/v1")

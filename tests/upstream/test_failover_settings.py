"""Fallback and breaker settings: the documented example loads, each rule is refused with its
reason, and keys never pass from a route to its fallbacks."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from shim.cli.startup import StartupError, check_settings
from shim.settings import (
    WORKER_SETTINGS,
    BreakerSettings,
    Fallback,
    Route,
    ServerSettings,
    Settings,
    load_settings,
    settings_for_worker,
    worker_settings,
)
from shim.upstream.routing import Router

DOC = Path(__file__).resolve().parents[2] / "docs" / "upstreams.md"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SHIM_"):
            monkeypatch.delenv(name)


def _doc_example() -> str:
    section = DOC.read_text().split("## Fallback upstreams and the circuit breaker", 1)[1]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match, "the section shows its configuration"
    return match.group(1)


def test_the_documented_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "shim.toml"
    config.write_text(_doc_example())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-router")
    settings = load_settings(config=config)
    assert (settings.server.breaker.failures, settings.server.breaker.cooldown) == (5, 30.0)
    (route,) = settings.routes
    upstreams = [(c.upstream, c.dialect, c.model, c.own_key()) for c in route.candidates()]
    assert upstreams == [
        ("https://api.openai.com/v1", "openai", None, "sk-openai"),
        ("https://openrouter.ai/api/v1", "openrouter", "openai/gpt-4o", "sk-router"),
        ("http://127.0.0.1:8000/v1", "vllm", "Qwen/Qwen3-8B", None),
    ]
    assert settings.server.api_keys == ("sk-shim-1",)
    Router(settings.routes, settings.server.api_keys)  # every dialect known


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [("SHIM_BREAKER_FAILURES", "2", "failures", 2), ("SHIM_BREAKER_COOLDOWN", "1.5", "cooldown", 1.5)],
)
def test_breaker_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str, expected: float
) -> None:
    monkeypatch.setenv(name, value)
    assert getattr(load_settings().server.breaker, field) == expected


@pytest.mark.parametrize(("name", "value"), [("SHIM_BREAKER_FAILURES", "0"), ("SHIM_BREAKER_COOLDOWN", "0")])
def test_a_bad_breaker_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"^{name}: Expected"):
        load_settings()


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (
            'kind = "responses"\nstateful = true\n[[routes.fallbacks]]\nupstream = "http://b/v1"',
            "a stateful route keeps previous_response_id at one upstream",
        ),
        (
            '[[routes.fallbacks]]\nupstream = "http://b/v1"\nkind = "responses"',
            "fallbacks\\[0\\] has kind 'responses' but the route is 'chat'",
        ),
        ('[[routes.fallbacks]]\nupstream = "http://b/v1"\nmystery = 1', "unknown field `mystery`"),
        ('[[routes.fallbacks]]\napi_key = "k"', "missing required field `upstream`"),
        (
            '[[routes.fallbacks]]\nupstream = "http://b/v1"\ndialect = "auto"',
            "fallbacks\\[0\\] must name its dialect",
        ),
        (
            '[[routes.fallbacks]]\nupstream = "http://b/v1"\napi_key = "k"',
            "differ in whose key they send",
        ),
    ],
    ids=["stateful", "kind", "unknown-key", "no-url", "auto-dialect", "keys-differ"],
)
def test_a_bad_fallback_is_refused_at_start(tmp_path: Path, route: str, reason: str) -> None:
    config = tmp_path / "shim.toml"
    config.write_text(f'[[routes]]\nupstream = "http://a/v1"\n{route}\n')
    with pytest.raises(ValueError, match=reason):
        load_settings(config=config)


def test_a_fallback_key_with_a_line_break_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "shim.toml"
    config.write_text(
        '[[routes]]\nupstream = "http://a/v1"\n[[routes.fallbacks]]\nupstream = "http://b/v1"\napi_key = "k\\r"\n'
    )
    with pytest.raises(ValueError, match=r"routes\[0\]\.fallbacks\[0\]\.api_key holds a carriage return"):
        load_settings(config=config)


def test_keys_and_headers_never_pass_to_a_fallback() -> None:
    route = Route(
        upstream="http://a/v1",
        api_key="sk-a",
        headers={"x-org": "a"},
        dialect="vllm",
        model="m-a",
        fallbacks=(Fallback(upstream="http://b/v1/"),),
    )
    _, fallback = route.candidates()
    assert (fallback.upstream, fallback.dialect, fallback.model) == ("http://b/v1", "vllm", "m-a")
    assert (fallback.api_key, fallback.api_key_env, fallback.headers, fallback.fallbacks) == (
        None,
        None,
        {},
        (),
    )


@pytest.mark.parametrize(
    ("api_keys", "fallback_key", "starts"),
    [
        ((), None, True),  # both forward the client's key
        ((), "sk-b", False),  # one its own, one the client's: refused
        (("sk-shim",), "sk-b", True),  # with shim keys the client's key is never forwarded
    ],
)
def test_every_upstream_of_a_route_agrees_on_whose_key_it_sends(
    api_keys: tuple[str, ...], fallback_key: str | None, starts: bool
) -> None:
    route = Route(upstream="http://a/v1", fallbacks=(Fallback(upstream="http://b/v1", api_key=fallback_key),))
    if starts:
        resolved = Router((route,), api_keys).resolve("m", api_keys[0] if api_keys else "sk-client")
        assert [f.upstream_key for f in resolved.fallbacks] == [fallback_key or "sk-client"]
    else:
        with pytest.raises(ValueError, match="differ in whose key they send"):
            Router((route,), api_keys)


def test_shim_serve_names_a_fallback_with_an_unknown_dialect() -> None:
    route = Route(upstream="http://a/v1", fallbacks=(Fallback(upstream="http://b/v1", dialect="nonesuch"),))
    with pytest.raises(StartupError, match=r"unknown dialect 'nonesuch' \(fallback 1\)"):
        check_settings(Settings(routes=(route,)))


def test_worker_processes_get_the_same_fallbacks_and_breaker(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--workers N`` hands each worker the settings as JSON: fallbacks and breaker survive."""
    route = Route(
        upstream="http://a/v1",
        failover_resend=True,
        fallbacks=(Fallback(upstream="http://b/v1", dialect="vllm", model="m-b", headers={"x-a": "1"}),),
    )
    settings = Settings(
        server=ServerSettings(breaker=BreakerSettings(failures=2, cooldown=4.0)), routes=(route,)
    )
    monkeypatch.setenv(WORKER_SETTINGS, "")  # restored (removed) after the test
    settings_for_worker(settings)
    assert worker_settings() == settings

"""Proxies from the environment: ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``
as curl and httpx read them, except that a loopback upstream (a local model server) is never
proxied."""

from __future__ import annotations

import httpx
import pytest

from shim.upstream.transport import AiohttpTransport
from tests.transport.scripted import Conn, Server, fetch, ok, transport

_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


CORP = "http://proxy.corp:3128"
CHOICES = {
    "https via HTTPS_PROXY": ({"HTTPS_PROXY": CORP}, "https", "api.openai.com", CORP),
    "http not via HTTPS_PROXY": ({"HTTPS_PROXY": CORP}, "http", "api.openai.com", None),
    "http via HTTP_PROXY": ({"HTTP_PROXY": CORP}, "http", "gpu-box.lan", CORP),
    "ALL_PROXY for any scheme": ({"ALL_PROXY": CORP}, "https", "api.openai.com", CORP),
    "lower-case names": ({"https_proxy": CORP}, "https", "api.openai.com", CORP),
    "NO_PROXY domain": ({"HTTPS_PROXY": CORP, "NO_PROXY": "openai.com"}, "https", "api.openai.com", None),
    "NO_PROXY other domain": (
        {"HTTPS_PROXY": CORP, "NO_PROXY": "example.com"},
        "https",
        "api.openai.com",
        CORP,
    ),
    "NO_PROXY *": ({"HTTPS_PROXY": CORP, "NO_PROXY": "*"}, "https", "api.openai.com", None),
    "127.0.0.1 never": ({"HTTP_PROXY": CORP, "ALL_PROXY": CORP}, "http", "127.0.0.1", None),
    "127.1.2.3 never": ({"HTTP_PROXY": CORP}, "http", "127.1.2.3", None),
    "localhost never": ({"HTTP_PROXY": CORP}, "http", "localhost", None),
    "::1 never": ({"HTTP_PROXY": CORP}, "http", "::1", None),
    "no proxy set": ({}, "https", "api.openai.com", None),
}


@pytest.mark.parametrize(("env", "scheme", "host", "proxy"), CHOICES.values(), ids=CHOICES.keys())
def test_which_proxy(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], scheme: str, host: str, proxy: str | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    chosen = AiohttpTransport().proxies.for_origin(scheme, host, 443 if scheme == "https" else 80)
    assert (str(chosen) if chosen else None) == proxy


def test_a_socks_proxy_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    proxies = AiohttpTransport().proxies
    assert proxies.for_origin("http", "127.0.0.1", 80) is None  # loopback: unaffected
    with pytest.raises(httpx.ProxyError, match="socks5"):
        proxies.for_origin("https", "api.openai.com", 443)


async def test_requests_go_through_the_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy (a scripted one on loopback) gets the absolute-form request for a named upstream
    and answers for it; the loopback proxy itself is reached directly."""

    async def proxy(conn: Conn) -> None:
        while await conn.request():
            await conn.send(ok(b"via proxy"))

    async with Server(proxy) as server:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
        client = transport()
        body = await fetch(client, 80, host="upstream.example")
        await client.aclose()
    assert body == b"via proxy"
    assert server.requests[0].startswith(b"POST http://upstream.example/v1/chat/completions HTTP/1.1\r\n")

"""Issue 12, finding 11: an upstream key or configured header holding CR, LF or NUL (a ``.env``
file saved with Windows line endings) never reaches an upstream as injected headers: start-up
refuses it naming where it was set, and a value read later (``api_key_env``) is refused when the
request is built, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.settings import load_settings
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_fixtures import fault, isolated
from tests.support.live_shim import LiveShim

__all__ = ["fault", "isolated"]  # the fixtures (isolated: autouse, no SHIM_* from outside)

# (an environment variable cannot hold NUL: the transport test covers it)
BAD = {
    "cr (CRLF .env)": "sk-upstream\r",
    "crlf injection": "sk-upstream\r\nx-injected: 1",
    "lf": "sk\nup",
}


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
def test_upstream_key_from_the_environment_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SHIM_UPSTREAM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SHIM_UPSTREAM_API_KEY", value)
    with pytest.raises(ValueError, match=r"^SHIM_UPSTREAM_API_KEY holds a carriage return or line feed"):
        load_settings()


CONFIG_CASES = {
    "api_key": ('api_key = "sk-a\\r"', r"shim\.toml: routes\[0\]\.api_key holds"),
    "api_key_env": (
        'api_key_env = "VENDOR_KEY"',
        r"^VENDOR_KEY \(named by .*routes\[0\]\.api_key_env\) holds",
    ),
    "header value": (
        'headers = { "x-org" = "acme\\r\\nx-injected: 1" }',
        r"routes\[0\]\.headers\.x-org holds",
    ),
}


@pytest.mark.parametrize(("line", "message"), CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_route_values_from_the_config_file_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, line: str, message: str
) -> None:
    monkeypatch.setenv("VENDOR_KEY", "sk-vendor\r")
    config = tmp_path / "shim.toml"
    config.write_text(f'[[routes]]\nupstream = "http://u/v1"\n{line}\n')
    with pytest.raises(ValueError, match=message):
        load_settings(config=config)


def test_good_values_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIM_UPSTREAM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SHIM_UPSTREAM_API_KEY", "sk-fine")
    assert load_settings().routes[0].api_key == "sk-fine"


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
async def test_a_key_read_at_request_time_is_never_sent(
    monkeypatch: pytest.MonkeyPatch, fault: FaultUpstream, value: str
) -> None:
    monkeypatch.setenv("VENDOR_KEY", "sk-fine")
    shim = LiveShim(fault.url, route={"api_key_env": "VENDOR_KEY"}, api_keys=("sk-client",))
    try:
        monkeypatch.setenv("VENDOR_KEY", value)  # rewritten after start-up
        response = await shim.client.post(
            "/v1/responses",
            json={"model": "ok", "input": "hi"},
            headers={"authorization": "Bearer sk-client"},
        )
        assert response.status_code == 502, response.text
        error = response.json()["error"]
        assert error["code"] == "upstream_misconfigured"
        assert "upstream API key" in error["message"] and value not in error["message"]
        assert fault.connections_seen == 0, "nothing reached the upstream"
    finally:
        await shim.aclose()

"""Per-key rate limits (shim/http/ratelimit.py, shim/store/rate_counters.py): the bucket
arithmetic on a fake clock, the estimate and header formats, and the server over a loopback
upstream (429 envelope, x-ratelimit-* headers on every answer, tokens settled with the usage the
upstream reported, WebSocket turns). Two replicas sharing a real Redis: tests/telemetry/test_rate_limits_redis.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from shim.http.app import create_app
from shim.http.ratelimit import estimate_tokens, reset_text
from shim.settings import KeyRateLimit, RateLimits, Route, ServerSettings, Settings, load_settings
from shim.store.rate_counters import MemoryCounters
from shim.upstream.client import UpstreamClient
from tests.server.harness import UPSTREAM_URL, Upstream
from tests.server.test_websocket import turn
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim

KEYS = ("sk-shim-a", "sk-shim-b")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- the buckets


async def test_requests_bucket_fills_drains_and_tells_its_state() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    seen = [await counters.admit("k", 3, 0, 0) for _ in range(4)]
    assert [d.allowed for d in seen] == [True, True, True, False]
    assert [d.requests.remaining for d in seen if d.requests] == [2, 1, 0, 0]
    assert seen[0].tokens is None  # no token limit: no token window
    refused = seen[3]
    assert refused.refused_by == "requests"
    assert refused.retry_after == pytest.approx(20.0)  # one request every 20 s at 3 per minute
    assert refused.requests is not None and refused.requests.reset == pytest.approx(60.0)
    clock.now += 20.0
    assert (await counters.admit("k", 3, 0, 0)).allowed
    assert not (await counters.admit("k", 3, 0, 0)).allowed
    assert (await counters.admit("other", 3, 0, 0)).allowed  # buckets are per key


async def test_a_refusal_by_one_limit_charges_neither() -> None:
    counters = MemoryCounters(Clock())
    assert (await counters.admit("k", 10, 100, 90)).allowed
    refused = await counters.admit("k", 10, 100, 20)
    assert not refused.allowed and refused.refused_by == "tokens"
    assert refused.requests is not None and refused.requests.remaining == 9  # not charged
    assert refused.retry_after == pytest.approx(6.0)  # 10 tokens over, 100 per minute
    assert (await counters.admit("k", 10, 100, 10)).allowed  # what fits still passes


@pytest.mark.parametrize(
    ("delta", "remaining"),
    [
        pytest.param(-80, 90, id="refund"),  # used 10 of an estimate of 90
        pytest.param(-200, 100, id="refund-capped-at-empty"),
        pytest.param(60, 0, id="debt"),  # used 150: over the limit until it drains
    ],
)
async def test_settle_moves_the_token_bucket(delta: int, remaining: int) -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    await counters.admit("k", 0, 100, 90)
    await counters.settle("k", 100, delta)
    after = await counters.admit("k", 0, 100, 0)
    assert after.tokens is not None and after.tokens.remaining == remaining
    if delta > 0:
        assert not after.allowed and after.retry_after == pytest.approx(30.0)  # 50 over at 100/min


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        pytest.param(b'{"model":"m","input":"hi"}', 7, id="bytes-over-4"),
        pytest.param(b'{"model":"m","max_output_tokens":100}', 10 + 100, id="responses-output"),
        pytest.param(b'{"model":"m","max_tokens":10,"n":3}', 9 + 30, id="chat-n-choices"),
        pytest.param(b'{"max_completion_tokens":5,"max_tokens":9}', 11 + 5, id="completion-tokens-first"),
        pytest.param(b"not json", 2, id="not-json"),
    ],
)
def test_estimate(body: bytes, tokens: int) -> None:
    assert estimate_tokens(body) == tokens


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.0174, "18ms"),
        (1.5, "1.5s"),
        (20.0, "20s"),
        (59.7181, "59.719s"),
        (360.0, "6m0s"),
        (61.25, "1m1.25s"),
    ],
)
def test_reset_text_as_openai_writes_it(seconds: float, text: str) -> None:
    assert reset_text(seconds) == text


def test_a_limit_for_an_unknown_key_stops_the_start(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "shim.toml"
    config.write_text(
        '[server]\napi_keys = ["sk-a"]\n[server.rate_limits]\nrequests_per_minute = 5\n'
        '[[server.rate_limits.keys]]\nkey = "sk-typo"\nrequests_per_minute = 1\n'
    )
    monkeypatch.delenv("SHIM_API_KEYS", raising=False)
    with pytest.raises(ValueError, match=r"keys\[0\]\.key is not one of the shim's api_keys"):
        load_settings(config=config)
    monkeypatch.setenv("SHIM_RATE_TOKENS_PER_MINUTE", "900")
    config.write_text('[server]\napi_keys = ["sk-a"]\n[[server.rate_limits.keys]]\nkey = "sk-a"\n')
    limits = load_settings(config=config).server.rate_limits
    assert (limits.tokens_per_minute, limits.keys[0].key) == (900, "sk-a")


# --------------------------------------------------------------------------- the server


@pytest.fixture
async def limited(fault: FaultUpstream) -> AsyncIterator[Callable[..., LiveShim]]:
    made: list[LiveShim] = []

    def make(**limits: Any) -> LiveShim:
        shim = LiveShim(fault.url, api_keys=KEYS, rate_limits=RateLimits(**limits))
        made.append(shim)
        return shim

    yield make
    for shim in made:
        await shim.aclose()


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


CASES = [
    pytest.param("/v1/responses", {"model": "ok", "input": "hi"}, id="responses-json"),
    pytest.param("/v1/responses", {"model": "ok", "input": "hi", "stream": True}, id="responses-sse"),
    pytest.param(
        "/v1/chat/completions", {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}, id="chat"
    ),
    pytest.param(
        "/v1/chat/completions",
        {"model": "ok", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        id="chat-sse",
    ),
]


@pytest.mark.parametrize(("path", "body"), CASES)
async def test_requests_per_minute(limited: Callable[..., LiveShim], path: str, body: dict[str, Any]) -> None:
    shim = limited(requests_per_minute=2)
    answers = [await shim.client.post(path, json=body, headers=_auth(KEYS[0])) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["1", "0", "0"]
    assert all(a.headers["x-ratelimit-limit-requests"] == "2" for a in answers)
    assert "x-ratelimit-limit-tokens" not in answers[0].headers  # no token limit configured
    refused = answers[2]
    assert refused.json() == {
        "error": {
            "message": refused.json()["error"]["message"],
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert "Limit 2" in refused.json()["error"]["message"]
    assert 29 <= int(refused.headers["retry-after"]) <= 30 and refused.headers["retry-after-ms"].isdigit()
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    other = await shim.client.post(path, json=body, headers=_auth(KEYS[1]))
    assert other.status_code == 200 and other.headers["x-ratelimit-remaining-requests"] == "1"


async def test_a_keys_own_limits_and_unlimited_paths(limited: Callable[..., LiveShim]) -> None:
    shim = limited(
        requests_per_minute=1,
        keys=(KeyRateLimit(key=KEYS[1], requests_per_minute=0, tokens_per_minute=50_000),),
    )
    body = {"model": "ok", "input": "hi"}
    for _ in range(3):  # no request limit of its own, a token limit instead
        answer = await shim.client.post("/v1/responses", json=body, headers=_auth(KEYS[1]))
        assert answer.status_code == 200
        assert "x-ratelimit-limit-requests" not in answer.headers
        assert answer.headers["x-ratelimit-limit-tokens"] == "50000"
    for _ in range(3):  # reading, listing and probing are not turns
        assert (await shim.client.get("/v1/models", headers=_auth(KEYS[0]))).status_code == 200
        assert "x-ratelimit-limit-requests" not in (await shim.client.get("/healthz")).headers


async def test_tokens_are_settled_with_the_reported_usage(limited: Callable[..., LiveShim]) -> None:
    # 600 per minute drains one token per 100 ms: a few ms between requests change nothing.
    shim = limited(tokens_per_minute=600)
    body = {"model": "ok", "input": "hi", "max_output_tokens": 50}
    estimate = estimate_tokens(json.dumps(body).encode())
    first = await shim.client.post("/v1/responses", json=body, headers=_auth(KEYS[0]))
    assert int(first.headers["x-ratelimit-remaining-tokens"]) in (600 - estimate, 601 - estimate)
    second = await shim.client.post("/v1/responses", json=body, headers=_auth(KEYS[0]))
    # the first turn now counts 7 tokens (3 in, 4 out: what the upstream reported), not its estimate
    assert int(second.headers["x-ratelimit-remaining-tokens"]) in range(
        600 - 7 - estimate, 603 - 7 - estimate
    )


async def test_a_turn_no_upstream_answered_gives_its_tokens_back(limited: Callable[..., LiveShim]) -> None:
    shim = limited(tokens_per_minute=600)
    failed = await shim.client.post(
        "/v1/responses", json={"model": "status-503", "input": "hi"}, headers=_auth(KEYS[0])
    )
    assert failed.status_code == 502 and "x-ratelimit-remaining-tokens" in failed.headers
    after = await shim.client.post(
        "/v1/responses", json={"model": "ok", "input": "hi"}, headers=_auth(KEYS[0])
    )
    estimate = estimate_tokens(json.dumps({"model": "ok", "input": "hi"}).encode())
    assert int(after.headers["x-ratelimit-remaining-tokens"]) >= 600 - estimate - 1


async def test_a_request_larger_than_the_token_limit(limited: Callable[..., LiveShim]) -> None:
    shim = limited(tokens_per_minute=1000)
    answer = await shim.client.post(
        "/v1/chat/completions",
        json={"model": "ok", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}]},
        headers=_auth(KEYS[0]),
    )
    assert answer.status_code == 429
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert "Request too large" in error["message"] and "retry-after" not in answer.headers


def test_websocket_turns_are_limited(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from tests.support.live_shim import isolated_env

    isolated_env(monkeypatch, tmp_path)
    settings = Settings(
        server=ServerSettings(
            store="memory://", api_keys=KEYS, rate_limits=RateLimits(requests_per_minute=2)
        ),
        routes=(Route(upstream=UPSTREAM_URL),),
    )
    app = create_app(settings, upstream=UpstreamClient(settings.server.timeouts, 0, transport=Upstream()))
    with (
        TestClient(app=app) as client,
        client.websocket_connect("/v1/responses", headers=_auth(KEYS[0])) as ws,
    ):
        frames = [turn(ws, {"model": "m", "input": "hi"}) for _ in range(3)]
    assert [f[-1]["type"] for f in frames] == ["response.completed", "response.completed", "error"]
    refused = frames[2][-1]
    assert refused["status"] == 429
    assert (refused["error"]["type"], refused["error"]["code"]) == ("requests", "rate_limit_exceeded")


async def test_a_background_turn_keeps_its_estimate(limited: Callable[..., LiveShim]) -> None:
    shim = limited(tokens_per_minute=600)
    body = {"model": "ok", "input": "hi", "background": True}
    estimate = estimate_tokens(json.dumps(body).encode())
    queued = await shim.client.post("/v1/responses", json=body, headers=_auth(KEYS[0]))
    assert queued.status_code == 200 and queued.json()["status"] == "queued"
    after = await shim.client.post(
        "/v1/responses", json={"model": "ok", "input": "hi"}, headers=_auth(KEYS[0])
    )
    second = estimate_tokens(json.dumps({"model": "ok", "input": "hi"}).encode())
    # the background turn runs after its request ended: its estimate stands, never refunded
    assert int(after.headers["x-ratelimit-remaining-tokens"]) in range(
        600 - estimate - second, 603 - estimate - second
    )


@pytest.fixture
async def counters_down(fault: FaultUpstream) -> AsyncIterator[LiveShim]:
    """A shim whose store (so its counters) is a Redis where nothing listens. Made before the test
    runs: a Litestar app configures logging when made, which would drop the log capture."""
    from tests.support.fault_upstream import refused_url

    dead = refused_url().removesuffix("/v1").replace("http://", "redis://") + "/0"
    shim = LiveShim(fault.url, store=dead, api_keys=KEYS, rate_limits=RateLimits(requests_per_minute=1))
    yield shim
    await shim.aclose()


async def test_counters_down_let_turns_pass_uncounted(
    counters_down: LiveShim, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}  # needs no store
    answers = [
        await counters_down.client.post("/v1/chat/completions", json=body, headers=_auth(KEYS[0]))
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert all("x-ratelimit-limit-requests" not in a.headers for a in answers)
    assert any("rate limits not counted" in r.getMessage() for r in caplog.records)


async def test_compaction_is_a_turn(limited: Callable[..., LiveShim]) -> None:
    shim = limited(requests_per_minute=1)
    body = {"model": "ok", "input": [{"role": "user", "content": "hi"}]}
    answers = [
        await shim.client.post("/v1/responses/compact", json=body, headers=_auth(KEYS[0])) for _ in range(2)
    ]
    assert answers[0].status_code == 200, answers[0].text
    assert answers[1].status_code == 429 and answers[1].json()["error"]["type"] == "requests"

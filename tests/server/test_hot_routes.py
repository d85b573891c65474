"""``http/hot_routes.py``: the turn endpoints served past Litestar's router answer exactly as
Litestar's own handling of the same handlers does.

Each case goes to two apps built alike, one with the hot routes and one without (the plain
Litestar path), and the ASGI messages they send must be the same, byte for byte: status, every
header in order, every body chunk. Ids, clocks and request ids are made deterministic so that
whole bodies compare. Errors of every kind (the shim's envelopes, Litestar's own 400/405/413, a
crash) and the paths the hot routes leave to Litestar are in the table; so are the request
counts by route in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shim.http.app import app_state
from shim.http.hot_routes import HotRoutes
from shim.ids import CountingIds, fixed_clock
from tests.server.harness import Shim, build_shim, status_app

_SEALED = re.compile(rb"shim1\.[A-Za-z0-9_-]+")
RESPONSES = {"model": "m", "input": "Say hello.", "max_output_tokens": 32}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 32}


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    body: bytes
    method: str = "POST"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    root_path: str = ""
    upstream: str = "scripted"  # scripted | 429 | crash
    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


CASES = [
    Case("responses-json", "/v1/responses", _json(RESPONSES)),
    Case("responses-stored", "/v1/responses", _json({**RESPONSES, "store": True})),
    Case("responses-stream", "/v1/responses", _json({**RESPONSES, "stream": True})),
    Case("responses-background", "/v1/responses", _json({**RESPONSES, "background": True, "store": True})),
    Case("responses-unknown-field", "/v1/responses", _json({**RESPONSES, "frobnicate": 1})),
    Case("responses-not-json", "/v1/responses", b"{nope"),
    Case("responses-bad-input", "/v1/responses", _json({**RESPONSES, "input": 5})),
    Case("responses-no-model", "/v1/responses", _json({"input": "hi"})),
    Case("responses-empty-body", "/v1/responses", b""),
    Case("responses-upstream-429", "/v1/responses", _json(RESPONSES), upstream="429"),
    Case("responses-crash", "/v1/responses", _json(RESPONSES), upstream="crash"),
    Case(
        "responses-unknown-previous", "/v1/responses", _json({**RESPONSES, "previous_response_id": "resp_x"})
    ),
    Case("compact", "/v1/responses/compact", _json({"model": "m", "input": "Say hello."})),
    Case("compact-bad", "/v1/responses/compact", _json({"input": 3})),
    Case("chat-json", "/v1/chat/completions", _json(CHAT)),
    Case("chat-stream", "/v1/chat/completions", _json({**CHAT, "stream": True})),
    Case(
        "chat-reasoning-header",
        "/v1/chat/completions",
        _json(CHAT),
        headers=((b"x-shim-reasoning", b"think"),),
    ),
    Case(
        "chat-bad-reasoning", "/v1/chat/completions", _json(CHAT), headers=((b"x-shim-reasoning", b"loud"),)
    ),
    Case("chat-not-json", "/v1/chat/completions", b"[1,"),
    Case("chat-upstream-429", "/v1/chat/completions", _json(CHAT), upstream="429"),
    # what the hot routes leave to Litestar, or what refuses a request before them
    Case("get-responses", "/v1/responses", b"", method="GET"),
    Case("trailing-slash", "/v1/responses/", _json(RESPONSES)),
    Case("root-path", "/api/v1/responses", _json(RESPONSES), root_path="/api"),
    Case("bad-host", "/v1/responses", _json(RESPONSES), headers=((b"host", b"bad host\x01"),)),
    Case(
        "content-length-too-big",
        "/v1/responses",
        _json(RESPONSES),
        headers=((b"content-length", b"99999999"),),
    ),
    Case(
        "content-length-not-a-number",
        "/v1/responses",
        _json(RESPONSES),
        headers=((b"content-length", b"ten"),),
    ),
    Case("body-too-big", "/v1/responses", _json({**RESPONSES, "input": "x" * 600}), max_body_bytes=512),
    Case("wrong-key", "/v1/responses", _json(RESPONSES), api_keys=("sk-right",)),
    Case("right-key", "/v1/chat/completions", _json(CHAT), api_keys=("sk-right",)),
    Case("models", "/v1/models", b"", method="GET"),
]


class _Crash(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug, not an upstream failure")


def _build(case: Case, hot: bool, monkeypatch: pytest.MonkeyPatch) -> Shim:
    with monkeypatch.context() as patch:
        if not hot:
            patch.setattr("shim.http.app.install_hot_routes", lambda *args: None)
        shim = build_shim(api_keys=case.api_keys, max_body_bytes=case.max_body_bytes)
    if case.upstream == "429":
        shim.upstream.use(status_app(429, {"error": {"message": "slow down", "type": "rate_limit"}}))
    elif case.upstream == "crash":
        shim.upstream.use(_Crash())
    turns = app_state(shim.app).turns
    turns.ids = CountingIds()
    turns.clock = fixed_clock()
    return shim


async def _exchange(shim: Shim, case: Case) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()
    requested = False
    headers = dict(
        [
            (b"host", b"shim"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer sk-right"),
            (b"x-request-id", b"req-parity"),
            (b"content-length", str(len(case.body)).encode()),
        ]
    )
    headers.update(case.headers)
    if case.api_keys and case.id == "wrong-key":
        headers[b"authorization"] = b"Bearer sk-wrong"

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": case.body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        copy = dict(message)
        if "body" in copy:  # sealed content is encrypted with a random nonce
            copy["body"] = _SEALED.sub(b"sealed", copy["body"])
        sent.append(copy)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": case.method,
        "scheme": "http",
        "path": case.path,
        "raw_path": case.path.encode(),
        "query_string": b"",
        "root_path": case.root_path,
        "headers": list(headers.items()),
        "client": ("127.0.0.1", 1),
        "server": ("shim", 80),
    }
    await shim.app(scope, receive, send)
    await shim.client.aclose()
    return sent


def _requests_counted(shim: Shim) -> list[str]:
    text = app_state(shim.app).metrics.registry
    from prometheus_client import generate_latest

    return sorted(
        line for line in generate_latest(text).decode().splitlines() if line.startswith("shim_requests_total")
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_the_hot_path_answers_as_litestar_does(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    hot, plain = _build(case, True, monkeypatch), _build(case, False, monkeypatch)
    hot_messages = await _exchange(hot, case)
    plain_messages = await _exchange(plain, case)
    assert hot_messages, "an answer was sent"
    assert hot_messages == plain_messages
    assert _requests_counted(hot) == _requests_counted(plain)


def test_the_turn_endpoints_are_hot_and_the_rest_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    hot = _build(CASES[0], True, monkeypatch)
    found: list[HotRoutes] = []
    handler: Any = hot.app.asgi_handler
    while handler is not None and not found:
        if isinstance(handler, HotRoutes):
            found.append(handler)
        handler = getattr(handler, "app", None)
    assert found, "the hot routes sit in the app's handler chain"
    assert sorted(found[0].routes) == ["/v1/chat/completions", "/v1/responses", "/v1/responses/compact"]


def test_a_handler_litestar_would_do_more_for_stays_with_litestar(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guard (or hook, dependency, middleware...) on a turn handler sends it back through
    Litestar: the hot routes never skip what Litestar would have run."""
    from shim.http import hot_routes

    seen: list[Callable[..., Any]] = []
    monkeypatch.setattr(hot_routes, "_plain", lambda handler: seen.append(handler) or False)
    shim = build_shim()
    handler: Any = shim.app.asgi_handler
    while handler is not None:
        assert not isinstance(handler, HotRoutes)
        handler = getattr(handler, "app", None)
    assert len(seen) == 3

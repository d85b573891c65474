"""``http/hot_routes.py``: the turn endpoints served past Litestar's router answer exactly as
Litestar's own handling of the same handlers does.

Each case goes to two apps built alike, one with the hot routes and one without (the plain
Litestar path), and the ASGI messages they send must be the same, byte for byte: status, every
header in order, every body chunk. Ids, clocks and request ids are made deterministic so that
whole bodies compare. Errors of every kind (the shim's envelopes, Litestar's own 400/405/413, a
crash) and the paths the hot routes leave to Litestar are in the table; so are the request
counts by route in ``/metrics``. Streams are sent by the hot path itself (not Litestar's
``Stream`` response): a client leaving mid-stream, keep-alive comments during a silent upstream
and an upstream breaking mid-stream are cases too.
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
from shim.sse import KEEPALIVE
from shim.turns.pump import Timing
from tests.server.harness import Shim, broken_stream, build_shim, stalling_stream, status_app

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
    upstream: str = "scripted"  # scripted | 429 | crash | stalling | slow | broken
    leave_after: int | None = None  # the client hangs up once this many body messages came
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
    # streams, sent by the hot path itself
    Case(
        "responses-stream-left",
        "/v1/responses",
        _json({**RESPONSES, "stream": True}),
        "POST",
        upstream="stalling",
        leave_after=1,
    ),
    Case(
        "chat-stream-left",
        "/v1/chat/completions",
        _json({**CHAT, "stream": True}),
        "POST",
        upstream="stalling",
        leave_after=1,
    ),
    Case(
        "responses-stream-keepalive", "/v1/responses", _json({**RESPONSES, "stream": True}), upstream="slow"
    ),
    Case("chat-stream-keepalive", "/v1/chat/completions", _json({**CHAT, "stream": True}), upstream="slow"),
    Case("responses-stream-broken", "/v1/responses", _json({**RESPONSES, "stream": True}), upstream="broken"),
    Case("chat-stream-broken", "/v1/chat/completions", _json({**CHAT, "stream": True}), upstream="broken"),
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


def _build(case: Case, hot: bool, monkeypatch: pytest.MonkeyPatch, opened: list[Any] | None = None) -> Shim:
    with monkeypatch.context() as patch:
        if not hot:
            patch.setattr("shim.http.app.install_hot_routes", lambda *args: None)
        shim = build_shim(api_keys=case.api_keys, max_body_bytes=case.max_body_bytes)
    if case.upstream == "429":
        shim.upstream.use(status_app(429, {"error": {"message": "slow down", "type": "rate_limit"}}))
    elif case.upstream == "crash":
        shim.upstream.use(_Crash())
    elif case.upstream == "stalling":  # silent for a minute after two chunks
        shim.upstream.use(stalling_stream(60.0, opened=opened))
    elif case.upstream == "slow":  # keep-alive comments while it is silent
        shim.upstream.use(stalling_stream(0.1, opened=opened))
    elif case.upstream == "broken":
        shim.upstream.use(broken_stream(3))
    turns = app_state(shim.app).turns
    if case.upstream == "slow":
        turns.timing = Timing(keepalive=0.02)
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
        bodies = sum(m["type"] == "http.response.body" for m in sent)
        if case.leave_after is not None and bodies >= case.leave_after:
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
    await asyncio.wait_for(shim.app(scope, receive, send), 10)
    await shim.client.aclose()
    return _one_keepalive(sent)


def _one_keepalive(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of keep-alive comments as one (how many fit in a silence depends on the clock)."""
    out: list[dict[str, Any]] = []
    for message in sent:
        if message.get("body") == KEEPALIVE and out and out[-1].get("body") == KEEPALIVE:
            continue
        out.append(message)
    return out


def _closing_folded(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Litestar's messages as the hot path sends them: a stream's last chunk (``Closing``) and
    the empty message that ends the body after it, as one message ending the body."""
    *rest, chunk, end = sent
    assert chunk["type"] == "http.response.body" and chunk["more_body"] is True and chunk["body"]
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}
    return [*rest, {**chunk, "more_body": False}]


def _ends_with_closing(sent: list[dict[str, Any]]) -> bool:
    last = sent[-1]
    return (
        last["type"] == "http.response.body"
        and last["more_body"] is False
        and bool(last["body"])
        and (
            len(sent) > 2  # (not a JSON answer's one body message)
            and sent[0]["type"] == "http.response.start"
            and dict(sent[0]["headers"]).get(b"content-type", b"").startswith(b"text/event-stream")
        )
    )


def _requests_counted(shim: Shim) -> list[str]:
    text = app_state(shim.app).metrics.registry
    from prometheus_client import generate_latest

    return sorted(
        line for line in generate_latest(text).decode().splitlines() if line.startswith("shim_requests_total")
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_the_hot_path_answers_as_litestar_does(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []
    hot, plain = _build(case, True, monkeypatch, opened), _build(case, False, monkeypatch, opened)
    hot_messages = await _exchange(hot, case)
    plain_messages = await _exchange(plain, case)
    assert hot_messages, "an answer was sent"
    closing = _ends_with_closing(hot_messages)
    assert hot_messages == (_closing_folded(plain_messages) if closing else plain_messages)
    if case.id == "responses-stream":  # its last batch (``response.completed``) is never empty
        assert closing
    assert _requests_counted(hot) == _requests_counted(plain)
    if case.upstream == "slow":
        assert any(m.get("body") == KEEPALIVE for m in hot_messages), "a keep-alive comment went out"
    if case.leave_after is not None:  # the client left: the upstream answer was closed, not finished
        assert hot_messages[-1].get("more_body") is True
        assert len(opened) == 2 and all(stream.closed for stream in opened)


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

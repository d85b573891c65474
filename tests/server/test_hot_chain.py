"""``http/hot_chain.py``: the turn endpoints served by one layer answer, log and count exactly as
the whole chain (observation → key gate → body guard → exception middleware → hot routes) does.

Each case goes to two apps built alike, one with ``HotChain`` in front and one without, and must
give the same ASGI messages (status, every header in order, every body chunk), the same access
lines (but for their clock and latency), the same request counts in ``/metrics`` and the same
open-streams gauge at the end. Refusals before the route (a key, a body too large, too deep or
not UTF-8, a client leaving while it sends) are in the table, so are the errors after it
(Litestar's own, the shim's envelopes, a crash), a client leaving mid-answer, and a stream that
fails after its start (both raise Litestar's "after response started" error).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Response
from litestar.exceptions import LitestarException
from litestar.response import Stream
from prometheus_client import generate_latest

from shim.http.app import app_state, create_app
from shim.http.hot_chain import HotChain
from shim.http.hot_routes import Call
from shim.ids import CountingIds, fixed_clock
from shim.settings import RateLimits, Route, ServerSettings, Settings
from shim.upstream.client import UpstreamClient
from tests.server.harness import UPSTREAM_URL, Shim, build_shim, slow_app, stalling_stream, status_app

_SEALED = re.compile(rb"shim1\.[A-Za-z0-9_-]+")
_GENERATED = re.compile(rb"req_[0-9a-f]{32}")
RESPONSES = {"model": "m", "input": "Say hello.", "max_output_tokens": 32}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 32}


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    upstream: str = "scripted"  # scripted | 429 | crash | slow | stalling | failing-core
    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    parts: int = 1  # the body sent in this many messages
    leave: str = ""  # "" | "while-sending" (before the body's end) | "after" (once it is sent)
    raises: bool = False


CASES = [
    Case("responses-json", "/v1/responses", _json(RESPONSES)),
    Case("responses-stored", "/v1/responses", _json({**RESPONSES, "store": True})),
    Case("responses-stream", "/v1/responses", _json({**RESPONSES, "stream": True})),
    Case("chat-json", "/v1/chat/completions", _json(CHAT)),
    Case("chat-stream", "/v1/chat/completions", _json({**CHAT, "stream": True})),
    Case("compact", "/v1/responses/compact", _json({"model": "m", "input": "Say hello."})),
    Case("body-in-parts", "/v1/responses", _json(RESPONSES), parts=3),
    Case("own-request-id", "/v1/responses", _json(RESPONSES), headers=((b"x-request-id", b"mine-1"),)),
    Case("bad-request-id", "/v1/responses", _json(RESPONSES), headers=((b"x-request-id", b"no spaces"),)),
    # refused before the route
    Case("wrong-key", "/v1/responses", _json(RESPONSES), api_keys=("sk-right",)),
    Case(
        "no-key",
        "/v1/responses",
        _json(RESPONSES),
        api_keys=("sk-right",),
        headers=((b"authorization", b""),),
    ),
    Case("key-not-ascii", "/v1/responses", _json(RESPONSES), headers=((b"authorization", b"Bearer k\xe9y"),)),
    Case("right-key", "/v1/chat/completions", _json(CHAT), api_keys=("sk-right",)),
    Case("body-too-big", "/v1/responses", _json({**RESPONSES, "input": "x" * 600}), max_body_bytes=512),
    Case(
        "body-too-big-in-parts",
        "/v1/responses",
        _json({**RESPONSES, "input": "x" * 600}),
        max_body_bytes=512,
        parts=4,
    ),
    Case("body-too-deep", "/v1/responses", b"[" * 5000 + b"]" * 5000),
    Case("body-not-utf8", "/v1/responses", b'{"model": "m\xff"}'),
    Case("left-while-sending", "/v1/responses", _json(RESPONSES), parts=3, leave="while-sending"),
    # errors after the route
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
    Case("responses-not-json", "/v1/responses", b"{nope"),
    Case("responses-empty-body", "/v1/responses", b""),
    Case("responses-upstream-429", "/v1/responses", _json(RESPONSES), upstream="429"),
    Case("chat-upstream-429", "/v1/chat/completions", _json(CHAT), upstream="429"),
    Case("responses-crash", "/v1/responses", _json(RESPONSES), upstream="crash"),
    Case("left-mid-answer", "/v1/responses", _json(RESPONSES), upstream="slow", leave="after"),
    Case(
        "left-mid-stream",
        "/v1/responses",
        _json({**RESPONSES, "stream": True}),
        upstream="stalling",
        leave="after",
    ),
    Case("stream-fails-after-start", "/v1/responses", _json(RESPONSES), upstream="failing-core", raises=True),
    # what the hot chain leaves to the whole chain
    Case("get-responses", "/v1/responses", b""),
    Case("trailing-slash", "/v1/responses/", _json(RESPONSES)),
    Case("bad-host", "/v1/responses", _json(RESPONSES), headers=((b"host", b"bad host\x01"),)),
    Case("models", "/v1/models", b""),
]


class _Crash(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug, not an upstream failure")


async def _failing_core(call: Call) -> Response[Any]:
    """A stream that breaks after its first chunk, as no core of the shim's does (they end a
    broken upstream stream with an error event)."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: one\n\n"
        raise RuntimeError("broken after the start")

    return Stream(chunks(), media_type="text/event-stream")


def _build(case: Case, folded: bool, monkeypatch: pytest.MonkeyPatch) -> Shim:
    with monkeypatch.context() as patch:
        if not folded:
            patch.setattr("shim.http.app.install_hot_chain", lambda *args: None)
        if case.upstream == "failing-core":
            patch.setattr("shim.http.app.answer_create", _failing_core)
        shim = build_shim(api_keys=case.api_keys, max_body_bytes=case.max_body_bytes)
    assert isinstance(shim.app.asgi_handler, HotChain) is folded
    if case.upstream == "429":
        shim.upstream.use(status_app(429, {"error": {"message": "slow down", "type": "rate_limit"}}))
    elif case.upstream == "crash":
        shim.upstream.use(_Crash())
    elif case.upstream == "slow":
        shim.upstream.use(slow_app(60.0))
    elif case.upstream == "stalling":
        shim.upstream.use(stalling_stream(60.0))
    turns = app_state(shim.app).turns
    turns.ids = CountingIds()
    turns.clock = fixed_clock()
    return shim


async def _exchange(shim: Shim, case: Case) -> tuple[list[dict[str, Any]], bool]:
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()
    size = max(1, -(-len(case.body) // case.parts))
    parts = [case.body[i : i + size] for i in range(0, len(case.body), size)] or [b""]
    messages = [{"type": "http.request", "body": part, "more_body": True} for part in parts]
    messages[-1]["more_body"] = False
    if case.leave == "while-sending":
        messages = [*messages[:1], {"type": "http.disconnect"}]
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
    if case.id == "wrong-key":
        headers[b"authorization"] = b"Bearer sk-wrong"

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        if case.leave == "after":
            await asyncio.sleep(0.05)
        else:
            await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        copy = dict(message)
        if "body" in copy:  # sealed content is encrypted with a random nonce
            copy["body"] = _SEALED.sub(b"sealed", copy["body"])
        if "headers" in copy:  # a generated request id is random
            copy["headers"] = [(k, _GENERATED.sub(b"generated", v)) for k, v in copy["headers"]]
        sent.append(copy)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    method = "GET" if case.id in ("get-responses", "models") else "POST"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": case.path,
        "raw_path": case.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(headers.items()),
        "client": ("127.0.0.1", 1),
        "server": ("shim", 80),
    }
    raised = False
    try:
        await asyncio.wait_for(shim.app(scope, receive, send), 10)
    except LitestarException as exc:
        assert "after response started" in str(exc)
        raised = True
    await shim.client.aclose()
    return sent, raised


def _counted(shim: Shim) -> list[str]:
    text = generate_latest(app_state(shim.app).metrics.registry).decode()
    return sorted(
        line
        for line in text.splitlines()
        if line.startswith(
            ("shim_requests_total", "shim_open_streams", "shim_request_duration_seconds_count")
        )
    )


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "shim.access"]
    for line in lines:
        del line["ts"], line["latency_ms"]
        if not line["request_id"].startswith(("req-", "mine-")):
            line["request_id"] = "generated" if re.fullmatch(r"req_[0-9a-f]{32}", line["request_id"]) else "?"
    caplog.clear()
    return lines


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_one_layer_answers_logs_and_counts_as_the_whole_chain(
    case: Case, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shim.access")
    folded, chained = _build(case, True, monkeypatch), _build(case, False, monkeypatch)
    root = logging.getLogger()
    if caplog.handler not in root.handlers:  # Litestar's logging set-up replaced the root's handlers
        monkeypatch.setattr(root, "handlers", [*root.handlers, caplog.handler])
    folded_sent, folded_raised = await _exchange(folded, case)
    folded_lines = _access_lines(caplog)
    chained_sent, chained_raised = await _exchange(chained, case)
    chained_lines = _access_lines(caplog)
    assert folded_sent == chained_sent
    assert folded_raised == chained_raised == case.raises
    assert folded_lines == chained_lines
    assert len(folded_lines) == 1
    assert _counted(folded) == _counted(chained)
    if case.leave:
        assert folded_lines[0]["status"] == 499
    if case.id in ("own-request-id", "responses-json"):
        start = folded_sent[0]
        assert start["headers"][-1] == (
            b"x-request-id",
            b"mine-1" if case.id == "own-request-id" else b"req-parity",
        )


def test_rate_limits_keep_the_whole_chain() -> None:
    """``RateLimit`` sits inside the body guard: with it on, nothing is folded."""
    settings = Settings(
        server=ServerSettings(store="memory://", rate_limits=RateLimits(requests_per_minute=100)),
        routes=(Route(upstream=UPSTREAM_URL),),
    )
    app = create_app(settings, upstream=UpstreamClient(settings.server.timeouts, settings.server.retries))
    assert app_state(app).limiter is not None
    assert not isinstance(app.asgi_handler, HotChain)

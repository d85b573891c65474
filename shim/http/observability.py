"""Request ids, one JSON log line per request, Prometheus metrics, ``/metrics`` and ``/readyz``.

``install(app, settings)`` wraps the app's ASGI handler (outermost, so 404s, body-guard errors and
streams are all seen) and registers the two endpoints:

- ``X-Request-Id``: taken from the request when it is a sane token (≤128 chars of
  ``[A-Za-z0-9._:+=/-]``), generated otherwise; always returned on the response.
- the ``shim.access`` logger gets one JSON object per request: route template, method, status,
  latency, upstream host, tokens, retries, upstream error kind, request id. Never headers, bodies,
  keys or full upstream URLs.
- traces (``shim.tracing``, when on): a span per request continuing an incoming ``traceparent``,
  its trace id in the access line (``trace_id``) beside the request id; a span per store operation.
- ``/metrics``: the app's own registry (``shim.telemetry.Metrics``); every worker's under
  ``--workers`` (``shim.http.worker_metrics``).
- ``/readyz``: 200 when the store answers a ping within 2 s and at least one upstream is
  configured, else 503 with the failing checks; ``upstreams`` shows each one's breaker state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import msgspec
from litestar import Litestar, Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST

from shim import tracing
from shim.http.auth import ClientAuth
from shim.http.guards import ASGIApp, BodyGuard, Message, Receive, Scope, Send
from shim.http.ratelimit import RateLimit
from shim.http.state import AppState, app_state
from shim.http.worker_metrics import exposition
from shim.telemetry import Metrics, RequestRecord, current_metrics, current_record, note_store
from shim.upstream.health import BreakerCollector, upstream_states

__all__ = ["TurnOutcome", "configure_logging", "install", "instrument_backend", "observe_turn"]

access_log = logging.getLogger("shim.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "WEBSOCKET", ""})
_RECORD, _METRICS = current_record(), current_metrics()
_STORE_OPS = ("get", "set", "add", "compare_and_set", "delete", "append", "list_range")


def configure_logging(*, enabled: bool = True) -> None:
    """JSON access lines on stderr, one per request, exactly as written (``serve`` calls this).
    Not propagated: other handlers would wrap the JSON in their own format."""
    access_log.propagate = False
    access_log.disabled = not enabled
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per upstream call repeats ours
    if enabled and not access_log.handlers:
        global _own_handler
        handler = _own_handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)


_own_handler: logging.StreamHandler[Any] | None = None
_encode = msgspec.json.Encoder().encode  # same compact JSON as json.dumps, ~10x cheaper


def _write_access_line(line: dict[str, Any]) -> None:
    """Straight to stderr while the logger is as ``configure_logging`` left it (the logging
    machinery costs ~8 us a line); through the logger when anyone added handlers or filters."""
    text = _encode(line).decode()
    handler = _own_handler
    if (
        handler is not None
        and not access_log.propagate
        and len(access_log.handlers) == 1
        and access_log.handlers[0] is handler
        and not access_log.filters
        and not handler.filters
    ):
        with contextlib.suppress(OSError, ValueError):  # a broken stderr must not fail the request
            handler.stream.write(text + "\n")  # stderr is line-buffered: one write per line
        return
    access_log.info(text)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
    return f"req_{os.urandom(16).hex()}"  # the shape of uuid4().hex at a quarter of the cost


class Observed:
    """One HTTP request as observation sees it: its record and metrics bound to the context, its
    clock and span started, then what of its answer went out (``saw``, for every message sent)
    until ``end`` accounts for it. ``Observe`` makes one per request; so does the hot chain
    (``shim/http/hot_chain.py``), which serves the turn endpoints without the wrappers."""

    __slots__ = (
        "answering",
        "bytes",
        "finished",
        "header",
        "metrics",
        "metrics_token",
        "record",
        "record_token",
        "span",
        "started",
        "status",
        "stream",
    )

    def __init__(self, scope: Scope, metrics: Metrics) -> None:
        record = self.record = RequestRecord(request_id=_request_id(scope))
        self.record_token = _RECORD.set(record)
        self.metrics_token = _METRICS.set(metrics)
        self.metrics = metrics
        self.started = time.perf_counter()
        traced = tracing.active()
        self.span = None
        if traced is not None:
            method = str(scope.get("method", ""))
            span = self.span = traced.request(
                method, str(scope.get("path", "")), scope.get("headers", ()), record.request_id
            )
            record.trace_id = span.trace_id
        self.status = 500
        self.answering = False  # a start went out
        self.stream = False
        self.finished = False
        self.bytes = 0
        self.header = (b"x-request-id", record.request_id.encode())

    def saw(self, message: Message) -> None:
        """A message on its way out: its bytes counted; a start's headers rewritten in one pass
        (the app's own ``x-request-id`` dropped, ours last) and its content-type read."""
        kind = message["type"]
        if kind == "http.response.body":
            self.bytes += len(message.get("body", b""))
            if not message.get("more_body"):
                self.finished = True
        elif kind == "http.response.start":
            self.status = message["status"]
            self.answering = True
            headers = []
            content_type = b""
            for pair in message.get("headers", ()):
                name = pair[0].lower()
                if name == b"x-request-id":
                    continue
                if name == b"content-type":
                    content_type = pair[1]
                headers.append(pair)
            headers.append(self.header)
            message["headers"] = headers
            if content_type.startswith(b"text/event-stream"):
                self.stream = True
                self.metrics.open_streams.inc()

    def sending(self, send: Send) -> Send:
        """``send``, each message seen first."""
        saw = self.saw

        async def observed_send(message: Message) -> None:
            saw(message)
            await send(message)

        return observed_send

    def end(self, scope: Scope) -> None:
        """The request is over: its series, latency, access line and span; the context as it was."""
        if self.stream:
            self.metrics.open_streams.dec()
        latency = time.perf_counter() - self.started
        status = int(self.status) if self.finished else 499  # 499: the client went away
        method = str(scope.get("method", ""))
        route = _route(scope)
        _account(self.metrics, method, route, status, self.record, self.stream, self.bytes, latency)
        if self.span is not None:
            self.span.end(_method_label(method), route, status)
        _RECORD.reset(self.record_token)
        _METRICS.reset(self.metrics_token)


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        observed = Observed(scope, self.metrics)
        try:
            await self.app(scope, receive, observed.sending(send))
        finally:
            observed.end(scope)


def _route(scope: Scope) -> str:
    return str(scope.get("path_template") or "unmatched")


def _method_label(method: str) -> str:
    # A client picks the method: any other than the standard ones shares one label, so odd
    # methods cannot grow the metrics without bound.
    return method if method in _METHODS else "OTHER"


def _account(
    metrics: Metrics,
    method: str,
    route: str,
    status: int,
    record: RequestRecord,
    stream: bool,
    bytes_out: int,
    latency: float,
) -> None:
    """One request (or WebSocket turn): its ``shim_requests_total`` series, latency and log line."""
    requests, latency_series = metrics.request_series(_method_label(method), route, status)
    requests.inc()
    latency_series.observe(latency)
    if access_log.isEnabledFor(logging.INFO):
        line = {
            "ts": round(time.time(), 3),
            "event": "request",
            "request_id": record.request_id,
            "method": method,
            "route": route,
            "status": status,
            "latency_ms": round(latency * 1000, 2),
            "stream": stream,
            "bytes_out": bytes_out,
            "upstream": record.upstream,
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
            "retries": record.retries,
            "upstream_error": record.upstream_error,
        }
        if record.trace_id is not None:
            line["trace_id"] = record.trace_id
        _write_access_line(line)


class TurnOutcome:
    """What ``observe_turn``'s block reports: the turn's status (its error frame's, else 200)."""

    status: int = 200
    bytes_out: int = 0


@contextlib.asynccontextmanager
async def observe_turn(metrics: Metrics, route: str, headers: Any = ()) -> AsyncIterator[TurnOutcome]:
    """One WebSocket turn as one request: the access-log line, metric series and span an HTTP
    request gets (method ``WEBSOCKET``; status 499 when the client went away mid-turn).
    ``headers``: the handshake's (raw ASGI pairs), whose ``traceparent`` every turn continues."""
    record = RequestRecord(request_id=_request_id({}))
    record_token = current_record().set(record)
    metrics_token = current_metrics().set(metrics)
    traced = tracing.active()
    span = traced.request("WEBSOCKET", route, headers, record.request_id) if traced is not None else None
    if span is not None:
        record.trace_id = span.trace_id
    outcome = TurnOutcome()
    started = time.perf_counter()
    finished = False
    try:
        yield outcome
        finished = True
    finally:
        status = outcome.status if finished else 499
        elapsed = time.perf_counter() - started
        _account(metrics, "WEBSOCKET", route, status, record, True, outcome.bytes_out, elapsed)
        if span is not None:
            span.end("WEBSOCKET", route, status)
        current_record().reset(record_token)
        current_metrics().reset(metrics_token)


def instrument_backend(backend: Any, metrics: Metrics) -> None:
    """Count every store operation by name and outcome (``ok``/``error``) in place; a span per
    operation inside a traced request (``shim.tracing.store_span``)."""
    system = type(backend).__name__.removesuffix("Backend").lower()  # redis, diskcache, memory

    def wrap(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                with tracing.store_span(name, system):
                    result = await method(*args, **kwargs)
            except Exception:
                note_store(metrics, name, "error")
                raise
            note_store(metrics, name, "ok")
            return result

        return counted

    for name in _STORE_OPS:
        method = getattr(backend, name, None)
        if method is not None:
            try:
                setattr(backend, name, wrap(name, method))
            except AttributeError:  # a backend with __slots__: left uncounted
                return


@get("/metrics", summary="Prometheus metrics", tags=["operations"], include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    metrics = app_state(request.app).metrics
    return Response(content=exposition(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@get("/readyz", summary="Readiness", tags=["operations"], include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = app_state(request.app).turns
    checks = {"upstreams": "ok" if ctx.router.routes else "no upstream configured"}
    if ctx.store is None:
        checks["store"] = "disabled"
    else:
        try:
            async with asyncio.timeout(2.0):
                ok = await ctx.store.backend.ping()
            checks["store"] = "ok" if ok else "ping failed"
        except Exception as exc:  # any failure means not ready; the kind is enough to act on
            checks["store"] = f"unreachable: {exc.__class__.__name__}"
    ready = all(v in ("ok", "disabled") for v in checks.values())
    # Each upstream's breaker, for reading only: an open one does not make this replica unready
    # (every replica shares its upstreams; a balancer would drop them all at once).
    upstreams = upstream_states(ctx.router, ctx.upstream.breakers, time.monotonic())
    status = "ready" if ready else "not_ready"
    body = json.dumps({"status": status, "checks": checks, "upstreams": upstreams}).encode()
    return Response(content=body, status_code=200 if ready else 503, media_type="application/json")


def install(app: Litestar, state: AppState) -> None:
    """Wrap ``app`` with the key gate, the body guard, the rate limits and observation; register
    ``/metrics`` and ``/readyz``."""
    metrics = state.metrics
    server = state.settings.server
    handler = cast(ASGIApp, app.asgi_handler)
    if state.limiter is not None:  # per-key rate limits, on the whole body (http/ratelimit.py)
        handler = RateLimit(handler, state.limiter)
    guarded = BodyGuard(handler, server.limits, server.max_body_bytes)
    gated = ClientAuth(guarded, state.turns.router)  # keys first: no body read for a 401
    app.asgi_handler = cast(Any, Observe(gated, metrics))
    app.register(metrics_endpoint)
    app.register(readyz)
    metrics.registry.register(BreakerCollector(state.turns.router, state.turns.upstream.breakers))
    store = state.turns.store
    if store is not None:
        instrument_backend(store.backend, metrics)

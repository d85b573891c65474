"""What one request did, and the process's Prometheus metrics, without threading either through
every call.

The observability middleware (``shim.http.observability``) opens a ``RequestRecord`` and binds
the app's ``Metrics`` in context variables for each request; code deep inside (the upstream
client, the streaming glue, the store wrapper) reports through the small functions here. Outside
a request (tests driving the service directly) they are no-ops. Nothing here ever sees a
credential: callers pass kinds, counts and host names only.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "Metrics",
    "RequestRecord",
    "current_metrics",
    "current_record",
    "note_retry",
    "note_store",
    "note_upstream",
    "note_upstream_error",
    "note_usage",
    "upstream_host",
]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """One registry per app, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "shim_requests", "HTTP requests answered", ("method", "route", "status"), registry=r
        )
        self.latency = Histogram(
            "shim_request_duration_seconds",
            "Time from request to the last byte of the answer",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "shim_upstream_errors", "Upstream failures by kind", ("kind",), registry=r
        )
        self.retries = Counter("shim_upstream_retries", "Upstream requests retried", registry=r)
        # livesum: under --workers the scrape sums the live workers' values (http/worker_metrics.py)
        self.open_streams = Gauge(
            "shim_open_streams", "SSE answers being streamed now", registry=r, multiprocess_mode="livesum"
        )
        self.store_ops = Counter(
            "shim_store_operations", "Store operations by kind and outcome", ("op", "outcome"), registry=r
        )
        self.tokens = Counter("shim_tokens", "Tokens reported by upstreams", ("direction",), registry=r)
        # Labelled children, made on first use as ``labels()`` makes them (a series appears with
        # its first request) and kept: ``labels()`` checks, joins and locks ~1 µs a call.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._tokens: dict[str, Counter] = {}

    def request_series(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        """``shim_requests_total`` and ``shim_request_duration_seconds`` for one request
        (``method`` and ``route`` are bounded labels: the caller maps odd methods to one)."""
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= 4096:  # bounded labels make a few dozen; never unbounded
                self._series.clear()
            series = self._series[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        return series

    def tokens_counted(self, direction: str) -> Counter:
        """``shim_tokens_total`` for ``input`` or ``output``."""
        counter = self._tokens.get(direction)
        if counter is None:
            counter = self._tokens[direction] = self.tokens.labels(direction)
        return counter


@dataclass
class RequestRecord:
    request_id: str
    upstream: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    retries: int = 0
    upstream_error: str | None = None
    trace_id: str | None = None  # the request's trace, when traces are on (shim.tracing)
    # Token accounting (shim/http/ratelimit.py): whether the upstream answers must be read for
    # their usage, how many answers came, and the tokens they reported (None: none did).
    usage_wanted: bool = False
    answered: int = 0
    used_tokens: int | None = None


_record: ContextVar[RequestRecord | None] = ContextVar("shim_request_record", default=None)
_metrics: ContextVar[Metrics | None] = ContextVar("shim_metrics", default=None)


def current_record() -> ContextVar[RequestRecord | None]:
    return _record


def current_metrics() -> ContextVar[Metrics | None]:
    return _metrics


@lru_cache(maxsize=256)  # called per request with a route's base URL: a handful of distinct values
def upstream_host(url: str) -> str:
    """``scheme://host:port`` only: a URL's user info, path or query may carry a secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def note_upstream(url: str) -> None:
    record = _record.get()
    if record is not None:
        record.upstream = upstream_host(url)


def note_upstream_error(kind: str) -> None:
    record, metrics = _record.get(), _metrics.get()
    if record is not None:
        record.upstream_error = kind
    if metrics is not None:
        metrics.upstream_errors.labels(kind).inc()


def note_retry() -> None:
    record, metrics = _record.get(), _metrics.get()
    if record is not None:
        record.retries += 1
    if metrics is not None:
        metrics.retries.inc()


def note_usage(input_tokens: int | None, output_tokens: int | None) -> None:
    record, metrics = _record.get(), _metrics.get()
    if record is not None:
        record.input_tokens, record.output_tokens = input_tokens, output_tokens
    if metrics is not None:
        metrics.tokens_counted("input").inc(input_tokens or 0)
        metrics.tokens_counted("output").inc(output_tokens or 0)


def note_store(metrics: Metrics | None, op: str, outcome: str) -> None:
    if metrics is not None:
        metrics.store_ops.labels(op, outcome).inc()

"""Streaming load client: N keep-alive connections POSTing a streaming body in a loop.

    .venv/bin/python -m bench.stream_client --url http://127.0.0.1:8080/v1/responses \\
        --body '{"model":"m","input":"hi","stream":true}' --clients 16 --duration 20 --api responses

Raw asyncio (uvloop) rather than httpx, so the client is never the bottleneck. For every stream it
records the time to the first response byte, to the first text delta and to the end of the body,
and checks the stream ended with the API's terminal event. ``--streams 1`` runs exactly one
stream per connection (the slow-stream scenario) instead of looping for ``--duration`` seconds.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["main"]

# What counts as the first text delta and as a complete stream, per client-facing API.
_DELTA = {"responses": re.compile(rb"response\.output_text\.delta"), "chat": re.compile(rb'"content":"[^"]')}
_END = {"responses": re.compile(rb"response\.completed"), "chat": re.compile(rb"data: \[DONE\]")}
_CHUNKED_END = b"\r\n0\r\n\r\n"
_TAIL = 64


@dataclass
class _Result:
    ttfb: float
    first_delta: float | None
    total: float
    events: int
    complete: bool
    status: int


@dataclass
class _Stats:
    results: list[_Result] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection; ``request`` sends and resolves when the body has ended."""

    def __init__(self, delta: re.Pattern[bytes], end: re.Pattern[bytes]) -> None:
        self.delta, self.end = delta, end
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[_Result] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, data: bytes) -> asyncio.Future[_Result]:
        assert self.transport is not None
        self.t0 = time.perf_counter()
        self.t_first: float | None = None
        self.t_delta: float | None = None
        self.head = b""
        self.in_body = False
        self.status = 0
        self.length: int | None = None
        self.received = 0
        self.tail = b""
        self.events = 0
        self.saw_end = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.in_body = True
            self.status = int(head[9:12])
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
            self.length = int(m.group(1)) if m else None
            self.tail = b"\r\n"  # so an empty chunked body still matches the terminator
        window = self.tail + data
        if self.t_delta is None and self.delta.search(window):
            self.t_delta = now
        if not self.saw_end and self.end.search(window):
            self.saw_end = True
        self.events += window.count(b"\n\n") - self.tail.count(b"\n\n")
        self.received += len(data)
        self.tail = window[-_TAIL:]
        done = self.received >= self.length if self.length is not None else window.endswith(_CHUNKED_END)
        if done and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(
                _Result(
                    self.t_first - self.t0,
                    self.t_delta and self.t_delta - self.t0,
                    now - self.t0,
                    self.events,
                    self.saw_end,
                    self.status,
                )
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("connection closed mid-response"))


async def _client(
    host: str,
    port: int,
    payload: bytes,
    api: str,
    stats: _Stats,
    deadline: float,
    streams: int | None,
    timeout: float,
) -> None:
    loop = asyncio.get_running_loop()
    conn: _Conn | None = None
    done = 0
    while (streams is None and time.perf_counter() < deadline) or (streams is not None and done < streams):
        done += 1
        try:
            if conn is None or conn.lost:
                _, conn = await loop.create_connection(lambda: _Conn(_DELTA[api], _END[api]), host, port)
            result = await asyncio.wait_for(conn.request(payload), timeout)
        except (OSError, TimeoutError) as exc:
            stats.error(type(exc).__name__)
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            conn = None
            continue
        if result.status != 200:
            stats.error(f"http_{result.status}")
        elif not result.complete:
            stats.error("incomplete")
        stats.results.append(result)
    if conn is not None and conn.transport is not None:
        conn.transport.close()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = args.body.encode()
    payload = (
        f"POST {url.path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"accept: text/event-stream\r\nauthorization: Bearer bench\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    stats = _Stats()
    start = time.perf_counter()
    deadline = start + args.duration
    streams = args.streams or None
    tasks = [
        _client(host, port, payload, args.api, stats, deadline, streams, args.timeout)
        for _ in range(args.clients)
    ]
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    ok = [r for r in stats.results if r.status == 200 and r.complete]
    deltas = [r.first_delta for r in ok if r.first_delta is not None]
    return {
        "clients": args.clients,
        "elapsed_s": round(elapsed, 3),
        "streams_ok": len(ok),
        "errors": sum(stats.errors.values()),
        "error_kinds": stats.errors,
        "streams_per_s": round(len(ok) / elapsed, 2) if elapsed else 0.0,
        "events": sum(r.events for r in ok),
        "events_per_s": round(sum(r.events for r in ok) / elapsed, 1) if elapsed else 0.0,
        "ttfb_p50_ms": _ms(statistics.median([r.ttfb for r in ok]) if ok else None),
        "first_delta_p50_ms": _ms(statistics.median(deltas) if deltas else None),
        "first_delta_p99_ms": _ms(_pct(deltas, 0.99)),
        "total_p50_ms": _ms(statistics.median([r.total for r in ok]) if ok else None),
        "total_p99_ms": _ms(_pct([r.total for r in ok], 0.99)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="streaming load client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="JSON request body (must ask for a stream)")
    parser.add_argument("--api", choices=sorted(_DELTA), default="responses", help="API the URL speaks")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=0, help="streams per client (0: loop for --duration)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one stream may take")
    args = parser.parse_args(argv)
    loop_factory: Callable[[], asyncio.AbstractEventLoop]
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run(args))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()

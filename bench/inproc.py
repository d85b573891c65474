"""The shim's own per-request work, in process: the app called as an ASGI app over an upstream
that answers at once, with no server and no socket (so no uvicorn, no aiohttp).

    .venv/bin/python -m bench.inproc [--requests 2000] [--chat] [--stream] [--profile] [--upstream] [--listen]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python -m bench.inproc --requests N

What it measures is what ``shim/http``, Litestar, the turn, the translation, the observability
and the upstream client's policy cost per request: everything but the ASGI server and the
transport. The CPU time per request (``time.process_time``, after a warm-up) moves with the
machine's load; the instruction count under callgrind does not: run it twice (``--requests 0``
and ``--requests N``) and divide the difference by N. ``--profile`` prints cProfile's top
functions by own time instead.

``--upstream`` sends each request for real, through the shim's own transport (aiohttp), to
``bench.fake_upstream`` started on core 1: then only the ASGI server is missing (the fake
upstream is another process, which callgrind does not follow).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import sys
import time
from typing import Any

import httpx

from bench.fake_upstream import chat_answers
from bench.harness import _CHAT_STREAM, _STREAM, CHAT_BODY, RESPONSES_BODY

_URL = "http://upstream.bench/v1"


class _Answering(httpx.AsyncBaseTransport):
    """An upstream that answers every request at once with the fake upstream's bytes."""

    def __init__(self, tokens: int) -> None:
        whole, events = chat_answers(tokens)
        self.whole = whole
        self.sse = b"".join(events)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if b'"stream":true' in request.content:
            headers = [(b"content-type", b"text/event-stream")]
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(self.sse))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.whole)).encode())]
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(self.whole))


def build(tokens: int, upstream: str | None = None) -> Any:
    os.environ.setdefault("SHIM_SECRET", "bench-secret-0123456789abcdef0123456789abcdef")
    from shim.http.app import create_app
    from shim.http.observability import configure_logging
    from shim.http.runtime_tuning import freeze_startup_objects
    from shim.settings import Route, ServerSettings, Settings
    from shim.upstream.client import UpstreamClient

    settings = Settings(server=ServerSettings(store="memory://"), routes=(Route(upstream=upstream or _URL),))
    transport = None if upstream else _Answering(tokens)  # None: the shim's own (aiohttp)
    client = UpstreamClient(settings.server.timeouts, settings.server.retries, transport=transport)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the access lines are written, to nowhere
    configure_logging(enabled=True)
    app = create_app(settings, upstream=client)
    freeze_startup_objects()
    return app


def _stays(callback: Any) -> None:
    """A server's ``shim.on_disconnect`` (``http/corked.Leaving``) for a client that never leaves."""


_SERVER_EXTENSIONS: dict[str, Any] = {}  # --listen: as ``shim serve``'s protocol offers


def scope_for(path: str) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer bench"),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
        **({"extensions": dict(_SERVER_EXTENSIONS)} if _SERVER_EXTENSIONS else {}),
    }


async def one(app: Any, path: str, body: bytes) -> int:
    sent = False
    status = 0
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # the client stays: no disconnect before the answer's end
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body"):
            never.set()  # as uvicorn's ``receive`` says once the answer is complete

    await app(scope_for(path), receive, send)
    return status


async def run(app: Any, path: str, body: bytes, requests: int) -> float:
    for _ in range(50):  # warm-up: caches, first-use imports
        assert await one(app, path, body) == 200
    started = time.process_time()
    for _ in range(requests):
        await one(app, path, body)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--chat", action="store_true", help="POST /v1/chat/completions (else /v1/responses)")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="cProfile's top functions by own time")
    parser.add_argument(
        "--upstream", action="store_true", help="a real fake upstream on core 1, over aiohttp"
    )
    parser.add_argument(
        "--listen",
        action="store_true",
        help="offer the shim.on_disconnect extension, as shim serve does (no watcher task)",
    )
    args = parser.parse_args(argv)
    if args.listen:
        _SERVER_EXTENSIONS["shim.on_disconnect"] = _stays
    if args.chat:
        path, fields = "/v1/chat/completions", {**CHAT_BODY, **(_CHAT_STREAM if args.stream else {})}
    else:
        path, fields = "/v1/responses", {**RESPONSES_BODY, **(_STREAM if args.stream else {})}
    body = json.dumps(fields).encode()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    upstream = None
    if args.upstream:
        from bench.servers import start_upstream

        upstream = start_upstream("1", args.tokens, 0.0)
    try:
        return _drive(args, path, body, f"http://127.0.0.1:{upstream.port}/v1" if upstream else None)
    finally:
        if upstream is not None:
            upstream.stop()


def _drive(args: argparse.Namespace, path: str, body: bytes, upstream: str | None) -> int:
    app = build(args.tokens, upstream)
    loop = asyncio.new_event_loop()
    gc.collect()
    if args.profile:
        loop.run_until_complete(run(app, path, body, 50))
        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(run(app, path, body, args.requests))
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(40)
        return 0
    seconds = loop.run_until_complete(run(app, path, body, args.requests))
    if args.requests:
        print(
            f"{args.requests} requests, {seconds * 1e6 / args.requests:.1f} us CPU each", file=sys.__stdout__
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

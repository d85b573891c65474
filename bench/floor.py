"""The stack floor: the least a Python proxy can cost on the shim's mandated server stack.

    .venv/bin/python -m bench.floor --upstream http://127.0.0.1:9100/v1 --port 9300

A raw ASGI app (no Litestar, no middleware) on uvicorn with the options ``shim serve`` gives it
(``shim/cli/command.py``: loop and HTTP parser ``auto``, i.e. uvloop and httptools, access log
off below INFO, the same graceful shutdown), relaying each ``POST /v1/<path>`` body byte for byte
to ``<upstream>/<path>`` through the shim's own upstream transport (``shim.upstream.transport``:
aiohttp behind the httpx API, its ``post`` fast path, the one ``UpstreamClient`` takes) and the
answer back byte for byte: a JSON answer in one message, a stream one message per upstream read.
No translation, no validation, no store, no metrics, no log; the garbage collector tuned as the
shim tunes it (``shim/http/runtime_tuning.py``), so the shim cannot beat the floor by that alone.

What it keeps, because a proxy that dropped them would not be a proxy one could run: a client
that hangs up cancels the relay and closes the upstream answer (a watcher task on ``receive``,
as the shim has), a bounded request body (413), an upstream that cannot be reached is a 502 in
the OpenAI error envelope. The gap between this and the shim is everything the shim does beyond
moving bytes; a target this floor itself misses is out of reach on this stack (bench/README.md,
"The stack floor").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol, cast

import httpx

from shim.upstream.transport import AiohttpTransport, Prepared

__all__ = ["Floor", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 32 * 1024 * 1024  # the shim's default ``max_body_bytes``
_LIMITS = httpx.Limits(max_connections=2000, max_keepalive_connections=200, keepalive_expiry=60.0)
# per socket read, as the shim's client and bench/passthrough.py set them
_TIMEOUTS = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=30.0).as_dict()
_CACHED = 1024  # upstream URLs kept parsed (one per path and query: never unbounded)


class _Chunks(Protocol):
    """The transport's answer body (``shim.upstream.transport._Body``): what has arrived, ``b""``
    at the end, without an async generator per chunk."""

    async def read_chunk(self) -> bytes: ...

    async def aclose(self) -> None: ...


def _error(status: int, message: str, kind: str) -> tuple[Message, Message]:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    )


class _Watch:
    """A task on ``receive`` (the body already read: it says nothing until ``http.disconnect``);
    a disconnect cancels the relaying task, which then closes the upstream answer."""

    __slots__ = ("left", "relay", "watcher")

    def __init__(self, receive: Receive) -> None:
        relay = asyncio.current_task()
        assert relay is not None, "called from a task"
        self.relay = relay
        self.left = False
        self.watcher = asyncio.ensure_future(receive())
        self.watcher.add_done_callback(self._heard)

    def _heard(self, watcher: asyncio.Future[Message]) -> None:
        if watcher.cancelled():
            return
        if watcher.exception() is None and watcher.result()["type"] != "http.disconnect":
            return  # (no other message can come after the whole body)
        self.left = True
        self.relay.cancel()

    def stop(self) -> None:
        self.watcher.remove_done_callback(self._heard)
        self.watcher.cancel()


class Floor:
    """The ASGI app: ``POST /v1/<path>`` relayed to ``<upstream>/<path>``."""

    def __init__(self, upstream: str) -> None:
        self.base = upstream.rstrip("/")
        self.transport = AiohttpTransport(_LIMITS)
        self.targets: dict[tuple[str, bytes], tuple[httpx.URL, Prepared]] = {}

    def _target(self, path: str, query: bytes) -> tuple[httpx.URL, Prepared]:
        """The upstream URL and its headers, parsed and checked once per path and query."""
        found = self.targets.get((path, query))
        if found is None:
            url = httpx.URL(self.base + path[3:] + (("?" + query.decode("latin-1")) if query else ""))
            headers = httpx.Headers(
                [
                    ("Host", url.netloc.decode("ascii")),
                    ("content-type", "application/json"),
                    ("accept", "application/json, text/event-stream"),
                    ("accept-encoding", "identity"),
                    ("user-agent", "bench-floor"),
                ]
            )
            prepared = self.transport.prepare(headers)
            assert prepared is not None, "fixed headers, no CR/LF"
            if len(self.targets) >= _CACHED:
                self.targets.clear()
            found = self.targets[(path, query)] = (url, prepared)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # (a WebSocket is refused by uvicorn when the app returns without accepting it)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # as ``shim.http.runtime_tuning.freeze_startup_objects``
                gc.collect()
                gc.freeze()
                _, older, oldest = gc.get_threshold()
                gc.set_threshold(10_000, older, oldest)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.transport.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if not path.startswith("/v1/"):
            for message in _error(404, f"Nothing at {path}.", "not_found_error"):
                await send(message)
            return
        if scope["method"] != "POST":
            start, body = _error(
                405, f"{scope['method']} is not allowed here; POST.", "invalid_request_error"
            )
            start["headers"].append((b"allow", b"POST"))
            await send(start)
            await send(body)
            return
        message = await receive()
        content: bytes = message.get("body", b"")
        if message.get("more_body"):
            parts = [content]
            size = len(content)
            while message.get("more_body"):
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                parts.append(message.get("body", b""))
                size += len(parts[-1])
                if size > MAX_BODY:
                    for reply in _error(413, f"The body is over {MAX_BODY} bytes.", "invalid_request_error"):
                        await send(reply)
                    return
            content = b"".join(parts)
        elif message["type"] == "http.disconnect":
            return
        url, prepared = self._target(path, scope["query_string"])
        watch = _Watch(receive)
        try:
            await self._relay(url, prepared, content, send)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not watch.left or (current is not None and current.uncancel() != 0):
                raise  # cancelled from outside (shutdown): goes on up
        finally:
            watch.stop()

    async def _relay(self, url: httpx.URL, prepared: Prepared, content: bytes, send: Send) -> None:
        try:
            response = await self.transport.post(url, prepared, content, _TIMEOUTS)
        except httpx.TransportError as exc:
            for message in _error(502, f"The upstream failed: {exc.__class__.__name__}.", "upstream_error"):
                await send(message)
            return
        stream = cast(_Chunks, response.stream)
        ended = False  # the last read returns the connection to the pool; else it is dropped
        try:
            media_type = response.headers.get("content-type", "application/json").encode("latin-1")
            if media_type.startswith(b"text/event-stream"):
                headers = [(b"content-type", media_type), (b"cache-control", b"no-cache")]
                await send(
                    {"type": "http.response.start", "status": response.status_code, "headers": headers}
                )
                while chunk := await stream.read_chunk():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            chunks = []
            while chunk := await stream.read_chunk():
                chunks.append(chunk)
            ended = True
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        finally:
            if not ended:  # a client that left, an upstream that broke off
                await stream.aclose()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="the stack floor: a raw ASGI relay (no translation)")
    parser.add_argument("--upstream", required=True, help="upstream base URL ending in /v1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9300)
    args = parser.parse_args(argv)
    # ``shim serve``'s options at its bench log level (warning), but the WebSocket frame size
    uvicorn.run(
        Floor(args.upstream),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()

"""The in-process shim: the app over a recording, swappable fake upstream, plus small fault upstreams.

Nothing here opens a socket. The shim's own httpx client talks to ``Upstream``, a transport that
records every request and hands it to the current target: an ASGI app (``scripted_chat.app`` by
default, or one of the fault apps below) or any httpx transport (``refused``, ``broken_stream``).
The wait for an answer is bounded by the read timeout the shim configured, as a network would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
from litestar import Litestar

from shim.core.diagnostics import Policy
from shim.http.app import create_app
from shim.settings import Route, ServerSettings, Settings, Timeouts
from shim.upstream.client import UpstreamClient
from tests.support import scripted_chat
from tests.support.scripted_asgi import read_body

__all__ = [
    "UPSTREAM_URL",
    "Shim",
    "Upstream",
    "asgi_post",
    "broken_stream",
    "build_shim",
    "parse_sse",
    "reasoning_app",
    "refused",
    "slow_app",
    "stalling_stream",
    "status_app",
    "text_of",
    "truncated_app",
]

UPSTREAM_URL = "http://upstream.test/v1"
DEFAULT_TIMEOUTS = Timeouts()

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Upstream(httpx.AsyncBaseTransport):
    """Records requests; forwards them to ``target`` (an ASGI app or an httpx transport)."""

    def __init__(self, target: ASGIApp | httpx.AsyncBaseTransport = scripted_chat.app) -> None:
        self.requests: list[httpx.Request] = []
        self._transport: httpx.AsyncBaseTransport
        self.use(target)

    def use(self, target: ASGIApp | httpx.AsyncBaseTransport) -> None:
        if isinstance(target, httpx.AsyncBaseTransport):
            self._transport = target
        else:
            self._transport = httpx.ASGITransport(target)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the POSTs the upstream received, in order."""
        return [json.loads(r.content) for r in self.requests if r.method == "POST"]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        read = request.extensions.get("timeout", {}).get("read")
        try:
            async with asyncio.timeout(read):
                response = await self._transport.handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout("fake upstream: read timed out", request=request) from None
        return response


@dataclass
class Shim:
    app: Litestar
    upstream: Upstream
    client: UpstreamClient
    settings: Settings


def build_shim(
    *,
    target: ASGIApp | httpx.AsyncBaseTransport = scripted_chat.app,
    routes: tuple[Route, ...] | None = None,
    api_keys: tuple[str, ...] = (),
    retries: int = 0,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    dialect: str = "openai",
    max_body_bytes: int = 1024 * 1024,
    diagnostics: Policy = "warn",
    store: str = "memory://",
) -> Shim:
    server = ServerSettings(
        store=store,
        diagnostics=diagnostics,
        api_keys=api_keys,
        retries=retries,
        timeouts=timeouts,
        max_body_bytes=max_body_bytes,
    )
    settings = Settings(
        server=server,
        routes=routes if routes is not None else (Route(upstream=UPSTREAM_URL, dialect=dialect),),
    )
    upstream = Upstream(target)
    client = UpstreamClient(settings.server.timeouts, settings.server.retries, transport=upstream)
    return Shim(create_app(settings, upstream=client), upstream, client, settings)


# --------------------------------------------------------------------------- raw ASGI


async def asgi_post(
    app: ASGIApp, path: str, body: bytes, *, hang_up_after_first_chunk: bool = False
) -> list[bytes]:
    """POST to ``app`` by hand and return the response body chunks exactly as the app sent them.

    httpx's ASGITransport joins the chunks; this keeps them apart, and can hang up (send
    ``http.disconnect``) once the first non-empty chunk went out.
    """
    chunks: list[bytes] = []
    first_chunk = asyncio.Event()
    done = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await (first_chunk if hang_up_after_first_chunk else done).wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
        if message["type"] == "http.response.body":
            if message.get("body"):
                chunks.append(message["body"])
                first_chunk.set()
            if not message.get("more_body"):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"shim")],
        "client": ("127.0.0.1", 1),
        "server": ("shim", 80),
    }
    await app(scope, receive, send)
    return chunks


# --------------------------------------------------------------------------- SSE parsing


def parse_sse(text: str) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Split a whole SSE body into ``(event name, data bytes)`` pairs and its raw blocks.

    Strict on purpose: every block is exactly ``event: X`` + ``data: {...}``, except the final
    ``data: [DONE]`` and ``:`` comments (keep-alives), which are returned as raw blocks only.
    """
    assert text.endswith("\n\n"), "the stream must end with a blank line"
    blocks = text[:-2].split("\n\n")
    events: list[tuple[str, bytes]] = []
    for block in blocks:
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines) or block == "data: [DONE]":
            continue
        assert len(lines) == 2, f"unexpected block {block!r}"
        name, data = lines
        assert name.startswith("event: ") and data.startswith("data: "), block
        events.append((name.removeprefix("event: "), data.removeprefix("data: ").encode()))
    return events, blocks


def text_of(message: dict[str, Any]) -> str:
    """The text of a Chat message, whether its content is a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p["text"] for p in content if p.get("type") == "text")
    return content or ""


# --------------------------------------------------------------------------- fault upstreams


def status_app(status: int, body: bytes | dict[str, Any], headers: dict[str, str] | None = None) -> ASGIApp:
    """Answer every request with ``status`` and ``body`` (a dict is sent as JSON)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    content_type = b"application/json" if isinstance(body, dict) else b"text/plain"
    raw_headers = [(b"content-type", content_type)]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": data})

    return app


def slow_app(delay: float) -> ASGIApp:
    """The scripted upstream, after ``delay`` seconds of silence."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(delay)
        await scripted_chat.app(scope, receive, send)

    return app


def _stream_chunks(body: bytes) -> list[bytes]:
    request = json.loads(body)
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in scripted_chat.chunks(request)]


def reasoning_app(thoughts: list[str], answer: list[str]) -> ASGIApp:
    """A DeepSeek-style thinking model: ``reasoning_content`` first, then the answer."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = json.loads(await read_body(receive))
        base = {"id": "chatcmpl-think", "created": 1700000000, "model": request.get("model", "m")}
        usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
        if not request.get("stream"):
            message = {
                "role": "assistant",
                "reasoning_content": "".join(thoughts),
                "content": "".join(answer),
            }
            completion = {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            }
            data = json.dumps(completion).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": data})
            return
        deltas = [{"reasoning_content": t} for t in thoughts] + [{"content": a} for a in answer]
        chunks = [
            {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": d, "finish_reason": None}],
            }
            for d in [{"role": "assistant"}, *deltas]
        ]
        chunks.append(
            {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
        )
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in chunks:
            data = b"data: " + json.dumps(chunk).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    return app


def truncated_app(keep: int) -> ASGIApp:
    """A streaming answer that stops after ``keep`` chunks: no finish_reason, no ``[DONE]``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        chunks = _stream_chunks(await read_body(receive))[:keep]
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


class _BreakingStream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes], request: httpx.Request) -> None:
        self.chunks = chunks
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        raise httpx.ReadError("fake upstream: connection reset", request=self.request)


def broken_stream(keep: int) -> httpx.MockTransport:
    """A 200 streaming answer whose connection breaks after ``keep`` chunks."""

    def handler(request: httpx.Request) -> httpx.Response:
        chunks = _stream_chunks(request.content)[:keep]
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_BreakingStream(chunks, request),
        )

    return httpx.MockTransport(handler)


class _StallingStream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes], pause: float, at: int) -> None:
        self.chunks = chunks
        self.pause = pause
        self.at = at
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for n, chunk in enumerate(self.chunks):
            if n == self.at:
                await asyncio.sleep(self.pause)
            yield chunk
        yield b"data: [DONE]\n\n"


def stalling_stream(pause: float, at: int = 2, opened: list[Any] | None = None) -> httpx.MockTransport:
    """The scripted streaming answer, silent for ``pause`` seconds before chunk ``at`` (a slow model).
    Each response stream is appended to ``opened``; its ``closed`` count tells whether the shim closed it."""

    def handler(request: httpx.Request) -> httpx.Response:
        stream = _StallingStream(_stream_chunks(request.content), pause, at)
        if opened is not None:
            opened.append(stream)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    return httpx.MockTransport(handler)


def refused() -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("fake upstream: connection refused", request=request)

    return httpx.MockTransport(handler)

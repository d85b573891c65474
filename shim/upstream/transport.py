"""A lean HTTP/1.1 keep-alive transport for httpx: the upstream client's hot path.

httpx's default transport (httpcore over anyio) spent most of the shim's CPU under load: on every
request its pool polls the socket of each pooled connection to see whether it expired, so the
cost of one request grows with the number of open connections (bench/README.md has the profile
and the figures). This transport keeps the httpx API (``httpx.AsyncBaseTransport``: the rest of
the code still builds ``httpx.Request`` and reads ``httpx.Response``) and does the wire work on an
``asyncio.Protocol`` with the llhttp parser from ``httptools`` (uvicorn's own parser):

- content-length, chunked and close-delimited bodies; keep-alive reuse, LIFO per origin, so the
  hottest connection is reused; a connection the server closed is known from ``connection_lost``
  at once, with no polling; idle ones past ``keepalive_expiry`` are dropped;
- failures map to the httpx exceptions httpcore would raise (``ConnectError``, ``ConnectTimeout``,
  ``ReadTimeout``, ``WriteTimeout``, ``PoolTimeout``, ``ReadError``, ``RemoteProtocolError``), with
  the per-operation timeouts httpx puts in ``request.extensions["timeout"]``;
- a request that fails on a *reused* connection before any byte of the answer arrived (the
  server closed it while idle: the keep-alive race) is sent once more on a fresh connection;
- the body of an answer is read with flow control: reading pauses while 256 KiB wait unread.

Content decoding (gzip…), redirects and cookies stay in ``httpx.AsyncClient``. Proxies do not:
``fast_transport`` returns ``None`` when the environment names a proxy, so httpx's own transport
(which honours it) is used instead; ``SHIM_UPSTREAM_TRANSPORT=httpx`` does the same on demand.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools
import httpx

from shim.settings import environment

__all__ = ["KeepAliveTransport", "fast_transport"]

_HIGH_WATER = 256 * 1024  # unread answer bytes before reading pauses
_NO_BODY_STATUS = frozenset({204, 304})
_Origin = tuple[bytes, bytes, int]


def fast_transport(limits: httpx.Limits) -> KeepAliveTransport | None:
    """This transport, or ``None`` for httpx's default: when a proxy is configured (httpx honours
    it) or when ``SHIM_UPSTREAM_TRANSPORT=httpx`` asks for it (an escape hatch, and the baseline of
    the benchmark)."""
    if environment().httpx_transport:
        return None
    proxies = urllib.request.getproxies()
    if any(proxies.get(k) for k in ("http", "https", "all")):
        return None
    return KeepAliveTransport(limits)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; answers are parsed as they arrive and handed to one reader."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.error: httpx.TransportError | None = None
        self.waiter: asyncio.Future[bool] | None = None
        self.drain: asyncio.Future[None] | None = None
        self.write_paused = False
        self.read_paused = False
        self.idle_since = 0.0
        self.reused = False
        self._reset()

    def _reset(self) -> None:
        self.received = False  # any byte of the current answer
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.message_done = False
        self.keep_alive = False
        self.until_close = False  # a body delimited by the end of the connection
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.head_only = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("The upstream switched protocols; not supported."))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"Malformed answer from the upstream: {exc}."))
        if self.buffered > _HIGH_WATER and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.message_done and self.until_close and exc is None:
            self.message_done = True
        elif not self.message_done and self.error is None:
            if exc is not None:
                self.error = httpx.ReadError(str(exc) or exc.__class__.__name__)
            elif self.headers_done:
                self.error = httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            else:
                self.error = httpx.RemoteProtocolError("Server disconnected without sending a response.")
        self._wake()
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    # httptools callbacks

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue…): the real one follows
            self.reason, self.headers = b"", []
            return
        self.status = status
        self.headers_done = True
        names = {name.lower() for name, _ in self.headers}
        self.until_close = (
            b"content-length" not in names
            and b"transfer-encoding" not in names
            and status not in _NO_BODY_STATUS
            and not self.head_only
        )
        if self.head_only:
            self.message_done = True  # llhttp cannot know a HEAD answer has no body
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers_done:
            # llhttp forgets the answer's keep-alive verdict once this callback returns
            self.keep_alive = self.parser.should_keep_alive()
            self.message_done = True
            self._wake()

    # used by the transport and the body stream

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def _fail(self, error: httpx.TransportError) -> None:
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def wait(self, timeout: float | None) -> None:
        """Until the parser made progress; ``httpx.ReadTimeout`` after ``timeout`` seconds."""
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            if not await waiter:
                raise httpx.ReadTimeout("Timed out reading the upstream answer.")
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    def take(self) -> bytes:
        """The body bytes received so far (reading resumes if it was paused)."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks, self.buffered = [], 0
        if self.read_paused and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes, timeout: float | None) -> None:
        assert self.transport is not None
        if self.closed:
            raise self.error or httpx.WriteError("The connection closed before the request was sent.")
        self.transport.write(data)
        if self.write_paused:
            self.drain = self.loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self.drain
            except TimeoutError:
                raise httpx.WriteTimeout("Timed out sending the request.") from None
            finally:
                self.drain = None
            if self.closed:
                raise self.error or httpx.WriteError("The connection closed while sending.")


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class _Body(httpx.AsyncByteStream):
    """An answer's body, read off its connection; the connection goes back to the pool after the
    last byte, or is closed if the reader stops early."""

    def __init__(self, pool: KeepAliveTransport, conn: _Connection, read_timeout: float | None) -> None:
        self.pool = pool
        self.conn: _Connection | None = conn
        self.read_timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self.conn
        while conn is not None:
            if conn.chunks:
                yield conn.take()
            elif conn.message_done:
                self.conn = None
                self.pool._release(conn)
                return
            elif conn.error is not None:
                self._discard()
                raise conn.error
            else:
                try:
                    await conn.wait(self.read_timeout)
                except BaseException:
                    self._discard()
                    raise
            conn = self.conn

    def _discard(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.pool._forget()
            self.conn = None

    async def aclose(self) -> None:
        self._discard()  # not read to the end: the rest of the answer is unwanted


class KeepAliveTransport(httpx.AsyncBaseTransport):
    def __init__(self, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        self.max_connections = limits.max_connections
        self.max_idle = limits.max_keepalive_connections
        self.keepalive_expiry = limits.keepalive_expiry
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0
        self._slots: deque[asyncio.Future[None]] = deque()  # requests waiting for a connection
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"Unsupported URL scheme {scheme.decode()!r}.")
        origin = (scheme, url.raw_host, url.port or (443 if scheme == b"https" else 80))
        head = self._head(request)
        body = request.content if isinstance(request.stream, httpx.ByteStream) else None
        conn = await self._acquire(origin, timeouts)
        try:
            return await self._exchange(conn, request, head, body, timeouts)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            if not (conn.reused and not conn.received and body is not None):
                raise
        # The server closed the idle connection as we sent on it: once more, on a fresh one.
        conn = await self._acquire(origin, timeouts, fresh=True)
        return await self._exchange(conn, request, head, body, timeouts)

    async def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        head: bytes,
        body: bytes | None,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        read_timeout = timeouts.get("read")
        try:
            conn.head_only = request.method == "HEAD"
            if body is not None:
                await conn.write(head + body if len(body) < 65536 else head, timeouts.get("write"))
                if len(body) >= 65536:
                    await conn.write(body, timeouts.get("write"))
            else:
                await conn.write(head, timeouts.get("write"))
                await self._send_stream(conn, request, timeouts.get("write"))
            while not conn.headers_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(read_timeout)
        except BaseException:
            conn.close()
            self._forget()
            raise
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=_Body(self, conn, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": conn.reason},
        )

    @staticmethod
    def _head(request: httpx.Request) -> bytes:
        parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    @staticmethod
    async def _send_stream(conn: _Connection, request: httpx.Request, timeout: float | None) -> None:
        """A request body of unknown length, chunk-encoded unless the caller set its length."""
        chunked = "content-length" not in request.headers
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for piece in request.stream:
            if piece:
                await conn.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece, timeout)
        if chunked and "transfer-encoding" in request.headers:
            await conn.write(b"0\r\n\r\n", timeout)

    async def _acquire(
        self, origin: _Origin, timeouts: dict[str, float | None], *, fresh: bool = False
    ) -> _Connection:
        deadline: float | None = None
        while True:
            conn = None if fresh else self._take_idle(origin)
            if conn is not None:
                return conn
            if self.max_connections is None or self._open < self.max_connections or self._evict():
                break
            pool_timeout = timeouts.get("pool")
            if deadline is None and pool_timeout is not None:
                deadline = time.monotonic() + pool_timeout
            await self._wait_slot(None if deadline is None else deadline - time.monotonic())
        self._open += 1
        try:
            return await self._connect(origin, timeouts.get("connect"))
        except BaseException:
            self._forget()
            raise

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        """The most recently used live idle connection to ``origin``; dead or expired ones are dropped."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            expiry = self.keepalive_expiry
            # ``received``: bytes while idle (a 408 before a hang-up…) belong to no request
            if conn.closed or conn.received or (expiry is not None and now - conn.idle_since > expiry):
                conn.close()
                self._forget()
                continue
            conn.reused = True
            return conn
        return None

    def _evict(self) -> bool:
        """At the connection limit: close the idle connection that waited longest (any origin)."""
        oldest: list[_Connection] | None = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest[0].idle_since):
                oldest = conns
        if oldest is None:
            return False
        oldest.pop(0).close()
        self._idle_count -= 1
        self._open -= 1
        return True

    async def _wait_slot(self, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0:
            raise httpx.PoolTimeout("No upstream connection became free in time.")
        slot = asyncio.get_running_loop().create_future()
        self._slots.append(slot)
        try:
            async with asyncio.timeout(timeout):
                await slot
        except TimeoutError:
            raise httpx.PoolTimeout("No upstream connection became free in time.") from None
        finally:
            if slot in self._slots:
                self._slots.remove(slot)

    def _next_slot(self) -> None:
        """Wake one request waiting for a connection (a slot freed, or an idle one came back)."""
        while self._slots:
            slot = self._slots.popleft()
            if not slot.done():
                slot.set_result(None)
                return

    async def _connect(self, origin: _Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        name = host.decode("ascii")
        context = None
        if scheme == b"https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(origin),
                    name,
                    port,
                    ssl=context,
                    server_hostname=name if context else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"Timed out connecting to {name}:{port}.") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or exc.__class__.__name__) from None
        return conn

    def _release(self, conn: _Connection) -> None:
        """After the last byte of an answer: keep the connection for the next request, or close it."""
        reusable = not (conn.closed or conn.error is not None or conn.head_only)
        if not reusable or not conn.keep_alive:
            conn.close()
            self._forget()
            return
        if self.max_idle is not None and self._idle_count >= self.max_idle:
            conn.close()
            self._forget()
            return
        conn._reset()
        conn.reused = False
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)
        self._idle_count += 1
        self._next_slot()

    def _forget(self) -> None:
        """A connection closed: it no longer counts against the limit."""
        self._open -= 1
        self._next_slot()

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0
        self._open = 0

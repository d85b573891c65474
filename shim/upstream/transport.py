"""The upstream client's wire: an httpx transport over aiohttp's connection pool and parser.

The rest of the code builds ``httpx.Request`` and reads ``httpx.Response`` (and tests mock it with
respx); this transport hands each request to aiohttp and wraps its answer back. aiohttp does the
HTTP/1.1 work (its C parser, keep-alive pool with a FIFO queue of waiters, happy eyeballs, TLS,
header limits, flow control); we do no HTTP parsing of our own. aiohttp was chosen over httpx's
own transport (httpcore) for CPU per request, and over ``httpx-aiohttp`` for its exception map
(``bench/README.md``, "Choosing the upstream client").

A POST (every request the shim sends while answering) skips ``ClientSession.request``: it makes
the calls ``ClientSession._request`` makes (``ClientRequest``, the connector's ``connect``, the
protocol's response settings, ``send``, ``start``) without the per-request work a proxy never
uses (cookies, redirects, traces, auth, the default-headers merge, URL re-parsing); its headers
are converted and checked once per set. That halves the upstream call's CPU (issue 18,
``bench/README.md``); ``tests/transport/test_aiohttp_shape.py`` fails if those pieces change
shape, and pyproject.toml pins aiohttp to the minor line it was checked on. Other methods (the
model listing's GET, which aiohttp may re-send on a dropped keep-alive connection) go through
the session.

What this layer decides:

- Errors map to the httpx exceptions httpcore would raise, so ``shim.upstream.client`` can tell a
  request that provably never left (``ConnectError``, ``ConnectTimeout``: safe to retry) from one
  that may have reached the upstream (everything else: never re-sent). aiohttp itself re-sends
  only idempotent methods on a reused connection that dropped (RFC 9112 §9.3.1), never a POST.
- Answers are passed on as sent (``auto_decompress`` off): ``shim.upstream.client`` decodes.
- Proxies come from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
  ``NO_PROXY``, through ``shim.settings.environment``), read once; loopback upstreams are never
  proxied (a local model server behind a corporate proxy setting is the common case, and no
  proxy can reach the shim's own loopback anyway).
- TLS uses ``httpx.create_ssl_context()``: the same trust store as httpx (``SSL_CERT_FILE``,
  ``SSL_CERT_DIR``, certifi).
- A header value with CR, LF or NUL is refused before anything is sent (``HeaderInjection``).
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import chain
from typing import Any, cast

import aiohttp
import httpx
from aiohttp import hdrs
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.helpers import TimerNoop
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, istr
from yarl import URL

from shim.settings import environment, proxy_for

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_FIELD_BYTES",
    "AiohttpTransport",
    "HeaderInjection",
    "InvalidAnswer",
    "Prepared",
    "build_transport",
]

# Upstream answer head limits (aiohttp's defaults, named so the docs can quote them): a status
# line or one header over 8 KiB, or more than 128 headers, fail the request at once.
MAX_HEADER_FIELD_BYTES = 8190
MAX_HEADERS = 128
_READ_BUFFER = 64 * 1024  # reading pauses while about twice this waits unread
_FORBIDDEN = re.compile(rb"[\r\n\0]")
_LENGTH = (b"Content-Length", b"content-length")
# aiohttp adds these unless told to skip them; httpx's request carries its own (or none)
_SKIPPED = ("User-Agent", "Accept", "Accept-Encoding")
_AUTO = frozenset(name.lower() for name in _SKIPPED)
_NO_TIMER = TimerNoop()  # the total timeout is ``UpstreamClient``'s: aiohttp's stays off
_CACHED = 1024  # entries per cache (URLs, header sets): per route and key, never unbounded


class InvalidAnswer(httpx.RemoteProtocolError):
    """The upstream's answer head broke HTTP or our limits (too large, too many headers…)."""


class HeaderInjection(httpx.LocalProtocolError):
    """A request header holds a character that would end it on the wire; nothing was sent."""


class _Proxies:
    """Which proxy an origin goes through, from the environment as read at start-up."""

    def __init__(self) -> None:
        self.env = environment().proxies
        self._chosen: dict[tuple[str, str, int], URL | None] = {}

    def for_origin(self, scheme: str, host: str, port: int) -> URL | None:
        key = (scheme, host, port)
        if key not in self._chosen:
            self._chosen[key] = self._choose(scheme, host, port)
        return self._chosen[key]

    def _choose(self, scheme: str, host: str, port: int) -> URL | None:
        url = proxy_for(self.env, scheme, host, port)
        if url is None:
            return None
        proxy = URL(url)
        if proxy.scheme not in ("http", "https"):
            raise httpx.ProxyError(f"Unsupported proxy scheme {proxy.scheme!r} (only http:// proxies).")
        return proxy


class _Target:
    """An upstream URL as aiohttp takes it, and where it goes: parsed once per upstream URL."""

    __slots__ = ("direct", "https", "proxy", "url")

    def __init__(self, source: httpx.URL, proxies: _Proxies) -> None:
        self.url = URL(str(source), encoded=True)
        self.https = source.scheme == "https"
        port = source.port or (443 if self.https else 80)
        self.proxy = proxies.for_origin(source.scheme, source.host, port)
        # What ``ClientSession._request`` would do nothing special for: no credentials in the
        # URL (basic auth), no fragment, an HTTP scheme and a host (else its errors apply).
        url = self.url
        self.direct = (
            url.scheme in ("http", "https")
            and bool(url.raw_host)
            and not (url.raw_user or url.raw_password or url.raw_fragment)
        )


class Prepared:
    """A request's headers as aiohttp takes them, checked once per set (the length aside)."""

    __slots__ = ("built", "expects", "pairs", "skip", "source")

    def __init__(
        self, source: httpx.Headers, pairs: list[tuple[str, str]], skip: frozenset[str] | None
    ) -> None:
        self.source = source
        self.pairs = pairs
        self.skip = skip  # aiohttp's own headers to leave out (``None``: all three present)
        # an ``Expect`` header: aiohttp's body writer waits for ``100 Continue`` (``_post``)
        self.expects = any(name == "expect" for name, _ in pairs)
        # aiohttp's header dict as ``ClientRequest.update_headers`` builds it from ``pairs``, per
        # request host (``_Request``)
        self.built: dict[str | None, CIMultiDict[str]] = {}


class _WithLength:
    """A prepared header set and one request's length, as ``_Request`` takes them; iterated,
    the pairs aiohttp would take (the length last)."""

    __slots__ = ("length", "prepared")

    def __init__(self, prepared: Prepared, length: str | None) -> None:
        self.prepared = prepared
        self.length = length

    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield from self.prepared.pairs
        if self.length is not None:
            yield ("content-length", self.length)


class _Request(aiohttp.ClientRequest):
    """aiohttp's request, its header dict copied from the one built for the set (and host) the
    first time rather than built header by header for each request (~9 headers, a Python loop:
    bench/README.md issue 18): ``update_headers`` of ``pairs`` is the same dict every time, and
    the length comes last, as ``[*pairs, ("content-length", length)]`` would put it."""

    def update_headers(self, headers: Any) -> None:
        if type(headers) is not _WithLength:
            super().update_headers(headers)
            return
        prepared = headers.prepared
        host = self.url.host_port_subcomponent
        built = prepared.built.get(host)
        if built is None:
            super().update_headers(prepared.pairs)
            if len(prepared.built) >= _CACHED:
                prepared.built.clear()
            built = prepared.built[host] = self.headers.copy()
        self.headers = built.copy()
        if headers.length is not None:
            self.headers.add("content-length", headers.length)


def _as_httpx(exc: aiohttp.ClientError, sent: bool) -> httpx.TransportError:
    """An aiohttp exception as the httpx one httpcore raises; ``sent``: the request may have left.
    Only a ``ConnectError`` or ``ConnectTimeout`` says that nothing reached the upstream."""
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, aiohttp.ClientConnectorError):  # DNS, refused, TLS handshake, proxy
        return httpx.ConnectError(text)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # no connection made in time
        return httpx.ConnectTimeout(text)
    if isinstance(exc, aiohttp.ServerTimeoutError):  # a socket read timed out
        return httpx.ReadTimeout(text)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(
            text if sent else "The upstream closed the connection without sending an answer."
        )
    if isinstance(exc, aiohttp.ClientPayloadError):  # body cut short, bad chunking
        return httpx.RemoteProtocolError(f"Invalid or incomplete upstream answer body: {text}")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return httpx.ProxyError(f"The proxy refused the connection: {exc.status} {exc.message}")
    if isinstance(exc, aiohttp.ClientResponseError):  # a head aiohttp's parser refused (limits…)
        return InvalidAnswer(f"The upstream's answer is not valid HTTP/1.1: {exc.message}")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(text)
    return httpx.ReadError(text)  # a reset or broken pipe on an open connection, and the rest


class _Handler(ResponseHandler):
    """aiohttp's connection protocol, without two costs it pays per HTTP chunk of a streamed
    answer. Its body reader asks to resume reading after every chunk it hands out, paused or not,
    and each such call re-runs the parser on no bytes and asks the transport to resume (3.14):
    only a paused connection has anything to resume. And each read of the socket cancels the
    per-read timeout's timer and makes a new one: here one timer stays armed and, when it fires
    before the read timeout is really due (bytes came since), re-arms for the rest — the
    timeout still ends the read ``sock_read`` seconds after the last bytes, as aiohttp's does."""

    _read_due = 0.0  # loop time at which the read timeout is due

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._reading_paused or self._buffer_paused:
            super().resume_reading(resume_parser)

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._drop_timeout()
            return
        due = self._read_due = self._loop.time() + timeout
        handle = self._read_timeout_handle
        if handle is not None and handle.when() > due:  # (a shorter timeout than the armed one)
            handle.cancel()
            handle = None
        if handle is None:
            self._read_timeout_handle = self._loop.call_at(due, self._read_timer)

    def _read_timer(self) -> None:
        self._read_timeout_handle = None
        if self._loop.time() < self._read_due:  # bytes came since it was armed
            self._read_timeout_handle = self._loop.call_at(self._read_due, self._read_timer)
        else:
            self._on_read_timeout()


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool, minus two hazards. Bytes that arrive on an idle connection (a 408 before a
    hang-up, the tail of a server's confused answer) stay buffered there, and aiohttp would read
    them as the next request's answer: such a connection is closed instead of reused. And
    aiohttp keeps every connection a burst opened (375 were seen idle after a soak) until its
    keep-alive expiry: past ``idle_cap`` idle ones, a connection whose answer ended is closed."""

    def __init__(self, *, idle_cap: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.idle_cap = idle_cap
        handler: type[ResponseHandler] = _Handler
        self._factory = functools.partial(handler, loop=self._loop)  # aiohttp's protocol factory

    def _release(self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False) -> None:
        # aiohttp's own hook (3.x): called as an answer ends, before the connection joins ``_conns``
        cap = self.idle_cap
        if cap is not None and not should_close and sum(map(len, self._conns.values())) >= cap:
            # full, or holding connections the upstream closed (aiohttp drops those lazily)
            should_close = self._live_idle() >= cap
        super()._release(key, protocol, should_close=should_close)

    def _live_idle(self) -> int:
        return sum(proto.is_connected() for conns in self._conns.values() for proto, _ in conns)

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        while True:
            conn = await super().connect(req, traces, timeout)
            if not getattr(conn.protocol, "should_close", False):
                return conn
            conn.close()  # a fresh connection never has anything buffered: this ends


class _Body(httpx.AsyncByteStream):
    """An answer's body as aiohttp reads it; the connection returns to the pool at its end, and
    is closed if the reader stops early. Then the request's slot is freed.

    Besides iteration, two coroutines spare a reader the async generator per chunk (the client's
    bounded reads use them): ``read_chunk`` (what has arrived, ``b""`` at the end) and
    ``read_at_most`` (the whole body, or more than ``limit`` bytes of it). ``identity``: the
    answer has no ``Content-Encoding`` (the client need not look through httpx's headers)."""

    identity = False

    def __init__(self, response: aiohttp.ClientResponse, slots: asyncio.Semaphore | None) -> None:
        self.response = response
        self.slots = slots

    async def read_chunk(self) -> bytes:
        reader = self.response.content
        try:
            if type(reader) is StreamReader:
                while reader._exception is None and not reader._buffer and not reader._eof:
                    await reader._wait("readany")  # (``readany``'s wait, with its timer)
                if reader._exception is None and reader._buffer and not reader._buffer_offset:
                    chunk = _take_buffered(reader)
                else:
                    chunk = await reader.readany()
            else:
                chunk = await reader.readany()
        except aiohttp.ClientError as exc:
            raise _as_httpx(exc, True) from exc
        if not chunk:
            self._done(self.response.release)
        return chunk

    def ready(self) -> bool:
        """Whether ``read_chunk`` would return without waiting (bytes or the end are here)."""
        reader = self.response.content
        if type(reader) is not StreamReader:
            return True  # (an answer without a body: its end is here)
        return bool(reader._buffer) or reader._eof or reader._exception is not None

    def arrived(self) -> bool:
        """Whether the whole body is here already (the parser saw its end): reading it then
        never waits, so there is nothing to time."""
        return self.response.content.is_eof()

    async def read_at_most(self, limit: int) -> bytes:
        chunk = await self.read_chunk()
        if not chunk:
            return chunk
        chunks = [chunk]
        size = len(chunk)
        while size <= limit:
            chunk = await self.read_chunk()
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.read_chunk():
            yield chunk

    async def aclose(self) -> None:
        # not read to the end: the rest of the answer is unwanted, the connection is dropped
        self._done(self.response.release if self.response.content.at_eof() else self.response.close)

    def _done(self, end: Callable[[], object]) -> None:
        end()
        slots, self.slots = self.slots, None
        if slots is not None:
            slots.release()


class _HeadWithBody:
    """The connection's transport while ``ClientRequest.send`` writes a POST's head (it writes
    it at once, having no body of its own to send): the body goes out in the same write. One
    ``send`` syscall and one wake-up of the upstream instead of two (bench/README.md, issue 18);
    the same bytes in the same order. Anything else is the transport's."""

    __slots__ = ("body", "transport", "written")

    def __init__(self, transport: asyncio.BaseTransport, body: bytes) -> None:
        self.transport = transport
        self.body = body
        self.written = False

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        transport = cast(asyncio.WriteTransport, self.transport)
        if self.written:
            transport.write(data)
            return
        transport.write(bytes(data) + self.body)
        self.written = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def _take_buffered(reader: StreamReader) -> bytes:
    """What ``readany`` returns when bytes are buffered (all of them), in one join. aiohttp takes
    them a piece at a time (``_read_nowait_chunk``, a call per HTTP chunk, each asking the
    protocol to resume): ~7% of a 200-chunk stream's CPU when its chunks come in a burst
    (bench/README.md, issue 18). The bookkeeping after is the same: size, cursor, the chunk
    ends passed, and reading resumed once the buffer is below its low-water marks."""
    reader._timer.assert_timeout()
    buffer = reader._buffer
    data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
    buffer.clear()
    size = len(data)
    reader._size -= size
    cursor = reader._cursor = reader._cursor + size
    splits = reader._http_chunk_splits  # the HTTP chunks' ends (ascending): those passed go
    if splits and splits[0] < cursor:
        if len(splits) == 1 or splits[-2] < cursor:  # all but perhaps the last: no loop of pops
            end = splits[-1]
            splits.clear()
            if end >= cursor:
                splits.append(end)
        else:
            while splits[0] < cursor:
                splits.popleft()
    if reader._size < reader._low_water and (splits is None or len(splits) < reader._low_water_chunks):
        reader._protocol.resume_reading()
    return data


def _write_body(protocol: ResponseHandler, content: bytes) -> None:
    """A request's body after its head (``ClientRequest.send`` wrote the head, with no body of
    its own to write), checked as aiohttp's writer checks a write."""
    transport = protocol.transport
    if transport is None or transport.is_closing():
        raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
    transport.write(content)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.Limits``: ``max_connections`` caps the requests in flight, hence the connections
    (a request waits for a slot up to the ``pool`` timeout, then ``PoolTimeout``);
    ``keepalive_expiry`` closes idle connections. The cap is a FIFO ``asyncio.Semaphore`` of ours,
    not aiohttp's ``limit``: aiohttp 3.14 loses a wake-up when a waiter is cancelled right after
    being handed a free connection (the next waiter then times out beside an idle connection),
    the semaphore hands it on. ``max_keepalive_connections`` caps the idle ones (``_Connector``)."""

    def __init__(self, limits: httpx.Limits | None = None) -> None:
        self.limits = limits or httpx.Limits()
        self.proxies = _Proxies()
        cap = self.limits.max_connections
        self._slots = asyncio.Semaphore(cap) if cap else None
        self._session: aiohttp.ClientSession | None = None
        self._connector: _Connector | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, URL] = {}
        self._targets: dict[object, _Target] = {}
        self._prepared: dict[tuple[tuple[bytes, bytes], ...], Prepared] = {}
        self._skip = frozenset(istr(name) for name in _SKIPPED)  # as the session holds them
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._tls: ssl.SSLContext | None = None  # made on the first HTTPS request (loading CAs costs ~0.2 s)

    def _open(self) -> aiohttp.ClientSession:
        """Made on first use: aiohttp binds the session to the running loop."""
        limits = self.limits
        self._loop = asyncio.get_running_loop()
        self._connector = connector = _Connector(
            idle_cap=limits.max_keepalive_connections,
            limit=0,  # capped by ``_slots``
            limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry if limits.keepalive_expiry is not None else 60.0,
        )
        self._session = session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # a proxy keeps no cookies
            auto_decompress=False,
            trust_env=False,  # proxies are chosen here, once per origin (not a thread hop a request)
            skip_auto_headers=_SKIPPED,  # httpx's headers go as built
            read_bufsize=_READ_BUFFER,
            max_line_size=MAX_HEADER_FIELD_BYTES,
            max_field_size=MAX_HEADER_FIELD_BYTES,
            max_headers=MAX_HEADERS,
        )
        return session

    def _url(self, url: httpx.URL) -> URL:
        text = str(url)
        parsed = self._urls.get(text)
        if parsed is None:
            if len(self._urls) >= 1024:
                self._urls.clear()
            parsed = self._urls[text] = URL(text, encoded=True)
        return parsed

    def _timeout(self, timeouts: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeouts.get("connect"), timeouts.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read = key
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=connect, sock_connect=connect, sock_read=read
            )
        return timeout

    async def _take_slot(self, timeout: float | None) -> asyncio.Semaphore | None:
        """A slot for one request (``None``: uncapped), waiting up to the pool timeout."""
        slots = self._slots
        if slots is None:
            return None
        if not slots.locked():
            await slots.acquire()  # free: returns without suspending
            return slots
        try:
            async with asyncio.timeout(timeout):
                await slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("No upstream connection became free in time.") from None
        return slots

    def _tls_for(self, https: bool) -> ssl.SSLContext | bool:
        if not https:
            return True  # (not used for http://)
        self._tls = self._tls or httpx.create_ssl_context()
        return self._tls

    def _target(self, url: httpx.URL) -> _Target:
        # httpx's parsed form (a named tuple of strings, shared by a URL's copies: each request
        # copies the client's) hashes fast; ``str(url)`` rebuilds the text (~2 us)
        key: object = getattr(url, "_uri_reference", None) or str(url)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= _CACHED:
                self._targets.clear()
            target = self._targets[key] = _Target(url, self.proxies)
        return target

    def prepare(self, headers: httpx.Headers) -> Prepared | None:
        """A request's headers (all but its length) as ``post`` takes them: checked, converted
        once (the shim sends the same set per route and key). ``None``: a set ``post`` cannot
        send as is (CR, LF or NUL in it, a length or transfer coding of its own); the general
        path refuses or sends it."""
        raw = headers.raw
        if _FORBIDDEN.search(b"".join(chain.from_iterable(raw))):
            return None
        encoding = headers.encoding
        # lower-cased names, as ``multi_items`` gives them to the general path
        pairs = [(name.lower().decode(encoding), value.decode(encoding)) for name, value in raw]
        names = {name for name, _ in pairs}
        if "transfer-encoding" in names or "content-length" in names:
            return None
        return Prepared(headers, pairs, None if names >= _AUTO else self._skip)

    def _prepared_for(self, request: httpx.Request) -> tuple[Prepared, str | None] | None:
        """``prepare`` for a whole request, from a cache keyed by every header but the length."""
        raw = request.headers.raw
        length: str | None = None
        if raw and raw[-1][0] in _LENGTH:  # ``UpstreamClient`` puts it last
            value = raw.pop()[1]
            if not value.isdigit():  # (anything odd takes the general path, and its checks)
                return None
            length = value.decode("ascii")
        key = tuple(raw)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self.prepare(httpx.Headers(raw))  # (all but the length)
            if prepared is None:
                return None
            if len(self._prepared) >= _CACHED:
                self._prepared.clear()
            self._prepared[key] = prepared
        return prepared, length

    async def post(
        self, url: httpx.URL, prepared: Prepared, body: bytes, timeouts: dict[str, float | None]
    ) -> httpx.Response:
        """What ``handle_async_request`` does for a POST of ``body`` with ``prepared`` headers
        and its length, without building an ``httpx.Request`` (``UpstreamClient`` calls this
        when nothing else needs one: no recording, no trace headers)."""
        session = self._session or self._open()
        target = self._target(url)
        if target.direct:
            return await self._post(session, target, prepared, str(len(body)), body, timeouts)
        request = httpx.Request(
            "POST",
            url,
            headers=prepared.source,
            stream=httpx.ByteStream(body),
            extensions={"timeout": timeouts},
        )
        request.headers["Content-Length"] = str(len(body))
        request.read()
        return await self.handle_async_request(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        url = request.url
        if request.method == "POST" and type(request.stream) is httpx.ByteStream:
            target = self._target(url)
            if target.direct and (prepared := self._prepared_for(request)) is not None:
                timeouts = request.extensions.get("timeout", {})
                return await self._post(session, target, prepared[0], prepared[1], request.content, timeouts)
        raw = request.headers.raw
        if _FORBIDDEN.search(b"".join(chain.from_iterable(raw))):  # one scan of every name and value
            bad = next(name for name, value in raw if _FORBIDDEN.search(name + value))
            raise HeaderInjection(f"The {bad.decode('latin-1')!r} header holds CR, LF or NUL; not sent.")
        headers = CIMultiDict(request.headers.multi_items())
        data: bytes | httpx.AsyncByteStream | None
        if isinstance(request.stream, httpx.ByteStream):
            data = request.content or None
        else:
            assert isinstance(request.stream, httpx.AsyncByteStream)
            data = request.stream  # aiohttp sends an async iterable chunk-encoded
            headers.popall("transfer-encoding", None)
        https = url.scheme == "https"
        tls = self._tls_for(https)
        port = url.port or (443 if https else 80)
        proxy = self.proxies.for_origin(url.scheme, url.host, port)
        timeouts = request.extensions.get("timeout", {})
        slots = await self._take_slot(timeouts.get("pool"))
        try:
            response = await session.request(
                request.method,
                self._url(url),
                headers=headers,
                data=data,
                allow_redirects=False,
                proxy=proxy,
                ssl=tls,
                timeout=self._timeout(timeouts),
            )
        except BaseException as exc:
            if slots is not None:
                slots.release()
            if isinstance(exc, aiohttp.ClientError):
                raise _as_httpx(exc, False) from exc
            raise
        return self._answer(response, slots)

    async def _post(
        self,
        session: aiohttp.ClientSession,
        target: _Target,
        prepared: Prepared,
        length: str | None,
        content: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        """A POST as ``session.request`` sends it, without the parts of its per-request work
        this transport never uses (cookies, redirects, traces, auth, middlewares, the default
        headers merge, URL re-parsing, retries: a POST is never re-sent): aiohttp's connector,
        request writer and parser do the work, through ``ClientRequest.send`` and
        ``ClientResponse.start``, the calls ``ClientSession._request`` makes.
        ``tests/transport/test_aiohttp_shape.py`` fails if those change shape."""
        timeout = self._timeout(timeouts)
        headers = _WithLength(prepared, length)
        # The body written here right after the head, in the same loop turn, rather than by the
        # task aiohttp starts for it (Python 3.11 has no eager tasks: ~57,000 instructions a
        # request, bench/README.md issue 18). The same bytes go out; not when aiohttp would wait
        # before the body (``Expect: 100-continue``, a paused connection) or sizes it itself.
        # The head and the body leave in one write (``_HeadWithBody``).
        inline = bool(content) and length is not None and not prepared.expects
        tls = self._tls_for(target.https)
        proxy = target.proxy
        slots = await self._take_slot(timeouts.get("pool"))
        connector, loop = self._connector, self._loop
        assert connector is not None and loop is not None
        response: aiohttp.ClientResponse | None = None
        body = None
        try:
            req = _Request(
                "POST",
                target.url,
                headers=headers,
                skip_auto_headers=prepared.skip,
                data=None if inline else content or None,
                loop=loop,
                proxy=proxy,
                timer=_NO_TIMER,
                session=session,
                ssl=tls,
                proxy_headers=None if proxy is None else CIMultiDict(),
            )
            body = req._body
            try:
                conn = await connector.connect(req, traces=[], timeout=timeout)
            except TimeoutError as exc:
                raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {req.url}") from exc
            assert conn.protocol is not None
            conn.protocol.set_response_params(
                timer=_NO_TIMER,
                skip_payload=False,
                read_until_eof=True,
                auto_decompress=False,
                read_timeout=timeout.sock_read,
                read_bufsize=_READ_BUFFER,
                timeout_ceil_threshold=connector._timeout_ceil_threshold,
                max_line_size=MAX_HEADER_FIELD_BYTES,
                max_field_size=MAX_HEADER_FIELD_BYTES,
                max_headers=MAX_HEADERS,
            )
            if inline and conn.protocol.writing_paused:  # aiohttp would send the head from a task
                req.update_body_from_data(content)
                inline = False
            protocol = conn.protocol
            real = protocol.transport
            head = _HeadWithBody(real, content) if inline and real is not None else None
            try:
                if head is not None:
                    protocol.transport = cast(Any, head)
                    try:
                        response = await req.send(conn)
                    finally:
                        if protocol.transport is head:
                            protocol.transport = real
                    if not head.written:  # (the head not written by ``send``: the body after it)
                        _write_body(protocol, content)
                else:
                    response = await req.send(conn)
                    if inline:
                        _write_body(protocol, content)
                await response.start(conn)
            except BaseException:
                if response is not None:
                    response.close()
                conn.close()
                raise
            if body is not None:
                await body.close()
        except BaseException as exc:
            if slots is not None:
                slots.release()
            if body is not None:
                await body.close()
            if (
                isinstance(exc, OSError)
                and not isinstance(exc, aiohttp.ClientError)
                and (exc.errno is not None or not isinstance(exc, TimeoutError))
            ):
                exc = aiohttp.ClientOSError(*exc.args)  # as ``ClientSession._request`` does
            if isinstance(exc, aiohttp.ClientError):
                raise _as_httpx(exc, False) from exc
            raise
        return self._answer(response, slots)

    @staticmethod
    def _answer(response: aiohttp.ClientResponse, slots: asyncio.Semaphore | None) -> httpx.Response:
        body = _Body(response, slots)
        body.identity = hdrs.CONTENT_ENCODING not in response.headers  # (aiohttp's parsed head)
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()}
        if _FAST_ANSWER:
            return _fast_response(response.status, response.raw_headers, body, extensions)
        return httpx.Response(
            response.status, headers=response.raw_headers, stream=body, extensions=extensions
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _fast_headers(raw: tuple[tuple[bytes, bytes], ...]) -> httpx.Headers:
    """``httpx.Headers(raw)`` for an answer's raw byte pairs, without its per-header calls and
    checks (the pairs are bytes already); httpx finds their encoding when first asked."""
    headers = httpx.Headers.__new__(httpx.Headers)
    headers._list = [(name, name.lower(), value) for name, value in raw]
    headers._encoding = None
    return headers


def _fast_response(
    status: int,
    raw: tuple[tuple[bytes, bytes], ...],
    stream: httpx.AsyncByteStream,
    extensions: dict[str, Any],
) -> httpx.Response:
    """``httpx.Response(status, headers=raw, stream=stream, extensions=extensions)``, its
    attributes set directly (~3 us less a request, bench/README.md issue 18). Used only when
    ``_answer_shape_holds`` found both ways give the same object (checked at import)."""
    response = httpx.Response.__new__(httpx.Response)
    response.status_code = status
    response.headers = _fast_headers(raw)
    response._request = None
    response.next_request = None
    response.extensions = extensions
    response.history = []
    response.is_closed = False
    response.is_stream_consumed = False
    response.default_encoding = "utf-8"
    response.stream = stream
    response._num_bytes_downloaded = 0
    return response


def _answer_shape_holds() -> bool:
    """Whether ``_fast_response`` builds what httpx's constructor builds, attribute for
    attribute (an httpx release that adds or renames one falls back to the constructor)."""
    samples: list[tuple[tuple[bytes, bytes], ...]] = [
        ((b"Content-Type", b"application/json"), (b"X-A", b"1"), (b"x-a", b"2")),
        ((b"X-Name", "caf\u00e9".encode()),),
        ((b"X-Name", b"\xff"),),
        (),
    ]
    stream = httpx.ByteStream(b"")
    for raw in samples:
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": b"OK"}
        slow = httpx.Response(200, headers=raw, stream=stream, extensions=extensions)
        fast = _fast_response(200, raw, stream, dict(extensions))
        if vars(slow).keys() != vars(fast).keys() or vars(slow.headers) != vars(fast.headers):
            return False
        if any(getattr(slow, name) != getattr(fast, name) for name in vars(slow) if name != "headers"):
            return False
    return True


_FAST_ANSWER = _answer_shape_holds()


def build_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The transport every upstream request goes through (tests build theirs here too)."""
    return AiohttpTransport(limits)

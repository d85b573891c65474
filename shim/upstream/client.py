"""The one httpx client, and the only place that talks to upstreams.

Before the first byte reaches our client, transient failures are retried with exponential backoff
and jitter, honouring ``Retry-After``: 429, 502 and 503 answers, and connect failures (refused,
DNS, TLS handshake), where the request provably never reached the upstream. Any other transport
error (a reset, a hang-up or a timeout after the request was written) is never retried: the
upstream may be doing the work, and a POST is not idempotent (RFC 9112 §9.3.1). Once a stream has
started nothing is retried: the pump (``shim.turns.pump``) ends the stream with a failure instead,
from the same error tree (``shim.upstream.errors.as_upstream_error``).

Upstreams are asked for ``identity`` (no compression); one that compresses anyway (gzip,
deflate) is decoded here, so error bodies, streams and the size limit all see decoded bytes.
Every answer body is read through ``_Bounded``, which enforces the total time limit and the
maximum answer size (decoded) for streaming and whole answers alike. An upstream's error message
is passed on, but never with the upstream credential in it (some vendors echo the key they were
sent). A key or configured header with CR, LF or NUL in it is never sent.
"""

from __future__ import annotations

import asyncio
import functools
import random
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx

from shim.errors import (
    ContextLengthExceeded,
    ShimError,
    UpstreamInvalidResponse,
    UpstreamMisconfigured,
    UpstreamReset,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnreachable,
)
from shim.settings import BreakerSettings, Timeouts, header_value_problem
from shim.telemetry import note_retry, note_upstream, note_upstream_error
from shim.tracing import upstream_call
from shim.upstream.breaker import Breakers
from shim.upstream.errors import STREAM_FAILURES, as_upstream_error, upstream_error
from shim.upstream.redaction import redact
from shim.upstream.routing import Resolved
from shim.upstream.transport import AiohttpTransport, InvalidAnswer, Prepared, build_transport

__all__ = ["Tap", "UpstreamClient", "redact"]

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
Tap = Callable[[Resolved, httpx.Request, httpx.Response], httpx.AsyncByteStream | httpx.SyncByteStream]
DEFAULT_RETRY_MAX_WAIT = 20.0

T = TypeVar("T")
_BREAKER = BreakerSettings()
_RETRY_STATUS = frozenset({429, 502, 503})
_ERROR_BODY_BYTES = 65536
_DECODED_PIECE = 65536  # a compressed chunk is inflated this much at a time (a bomb stays small)
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Bounded(httpx.AsyncByteStream):
    """An answer body that may not outlast ``deadline`` (loop time) nor exceed ``max_bytes``.

    One timer per body, not an ``asyncio.timeout`` per chunk (a timer handle made and cancelled
    for every chunk cost ~2 us, bench/README.md): at the deadline it cancels the task waiting for
    a chunk, if one is, as ``asyncio.timeout`` would; a read that starts later fails at once.
    The transport's body is read through its ``read_chunk`` / ``read_at_most`` coroutines when
    it has them (no async generator per chunk); a body that has ``arrived()`` whole is read
    without the timer (reading it cannot wait)."""

    def __init__(
        self,
        inner: httpx.AsyncByteStream,
        max_bytes: int,
        deadline: float,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self.deadline = deadline
        self._loop = loop  # (the running one, found at the first read if not given)
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Task[object] | None = None  # the task awaiting a chunk
        self._cancelling = 0  # its ``cancelling()`` count before the deadline cancelled it
        self._expired = False
        self.released = False  # read whole by ``read_all``: nothing left to close

    def _expire(self) -> None:
        self._expired = True
        waiter = self._waiter
        if waiter is not None:
            self._cancelling = waiter.cancelling()
            waiter.cancel()

    def _over(self) -> UpstreamTimeout:
        return UpstreamTimeout("The upstream answer exceeded the total time limit.")

    async def _next(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        """One chunk, awaited under the deadline."""
        if self._expired:
            raise self._over()
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._timer is None:
            self._timer = loop.call_at(self.deadline, self._expire)
        # (given the loop, ``current_task`` skips ``get_running_loop``: on Python 3.11 that is a
        # ``getpid`` system call, per chunk of a stream here; bench/README.md issue 18)
        task = self._waiter = asyncio.current_task(loop)
        try:
            return await read()
        except asyncio.CancelledError:
            if self._expired and task is not None and task.uncancel() <= self._cancelling:
                raise self._over() from None
            raise
        except TimeoutError:  # (the inner stream's own, e.g. a read timeout at the deadline)
            if loop.time() < self.deadline:
                raise
            raise self._over() from None
        finally:
            self._waiter = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = getattr(self.inner, "read_chunk", None)  # the transport's: ``b""`` at the end
        native = read is not None
        if read is None:
            read = self.inner.__aiter__().__anext__
        size = 0
        try:
            while True:
                try:
                    chunk = await self._next(read)
                except StopAsyncIteration:
                    return
                if not chunk and native:
                    return
                size += len(chunk)
                if size > self.max_bytes:
                    raise UpstreamTooLarge(f"The upstream answer exceeded {self.max_bytes} bytes.")
                yield chunk
        finally:
            self._stop()

    def ready(self) -> bool:
        """Whether the next chunk (or the end, or the deadline's error) is here: reading it would
        not wait. Only the transport's body can tell; any other says no."""
        if self._expired:
            return True
        ready = getattr(self.inner, "ready", None)
        return ready is not None and bool(ready())

    async def read_all(self) -> bytes:
        """The whole body, bounded alike."""
        whole = getattr(self.inner, "read_at_most", None)
        if whole is None:
            return b"".join([chunk async for chunk in self])
        arrived = getattr(self.inner, "arrived", None)
        if arrived is not None and arrived() and not self._expired:
            # all here (a JSON answer usually comes with its head): read without suspending, so
            # no timer to arm and cancel (one less per answer, bench/README.md issue 18)
            data: bytes = await whole(self.max_bytes)
        else:
            try:
                data = await self._next(functools.partial(whole, self.max_bytes))
            finally:
                self._stop()
        if len(data) > self.max_bytes:
            raise UpstreamTooLarge(f"The upstream answer exceeded {self.max_bytes} bytes.")
        self.released = True  # (``read_at_most`` read to the end, which frees the connection)
        return data

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def aclose(self) -> None:
        self._stop()
        await self.inner.aclose()


class _Inflated(httpx.AsyncByteStream):
    """A gzip or deflate body, decoded a bounded piece at a time."""

    def __init__(self, inner: httpx.AsyncByteStream, wbits: int) -> None:
        self.inner = inner
        self.wbits = wbits

    async def __aiter__(self) -> AsyncIterator[bytes]:
        decoder = zlib.decompressobj(self.wbits)
        first = True
        async for chunk in self.inner:
            data = chunk
            while data:
                try:
                    piece = decoder.decompress(data, _DECODED_PIECE)
                except zlib.error:
                    if not (first and self.wbits == zlib.MAX_WBITS):
                        raise UpstreamInvalidResponse(
                            "The upstream sent a compressed answer that does not decode."
                        ) from None
                    # "deflate" sent raw, without the zlib wrapper (as some servers do)
                    decoder, self.wbits = zlib.decompressobj(-zlib.MAX_WBITS), -zlib.MAX_WBITS
                    continue
                first = False
                data = decoder.unconsumed_tail
                if piece:
                    yield piece
        tail = decoder.flush()
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self.inner.aclose()


def _decoded(response: httpx.Response) -> None:
    """Decode a compressed answer here (the upstream was asked for ``identity``): its stream then
    yields decoded bytes, and httpx no longer decodes it."""
    if getattr(response.stream, "identity", False):  # the transport saw no content-encoding
        return
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise UpstreamInvalidResponse(
            f"The upstream answered with content-encoding {encoding[:40]!r}, which the shim does not "
            "decode (it asks for identity)."
        )
    assert isinstance(response.stream, httpx.AsyncByteStream)
    response.stream = _Inflated(response.stream, wbits)
    del response.headers["content-encoding"]
    response.headers.pop("content-length", None)


class _Expiry:
    """The timer's side of ``_before``: it cancels the task, noting that it did."""

    __slots__ = ("cancelling", "fired", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.cancelling = task.cancelling()
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


async def _before(loop: asyncio.AbstractEventLoop, when: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result under ``asyncio.timeout_at(when)``'s rules: ``TimeoutError`` when
    the deadline cancelled it, an outside cancellation stays one. One timer handle and no
    context manager: ~3.8 us against ~5.3 a use under uvloop (bench/README.md, issue 18)."""
    task = asyncio.current_task(loop)
    assert task is not None, "called from a task"
    expiry = _Expiry(task)
    timer = loop.call_at(when, expiry)
    try:
        result = await awaitable
    except BaseException as exc:
        timer.cancel()
        if expiry.fired and task.uncancel() <= expiry.cancelling and isinstance(exc, asyncio.CancelledError):
            raise TimeoutError from exc
        raise
    timer.cancel()
    if expiry.fired:  # it fired, but the awaitable finished anyway: the cancellation is undone
        task.uncancel()
    return result


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class UpstreamClient:
    def __init__(
        self,
        timeouts: Timeouts,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        retry_max_wait: float = DEFAULT_RETRY_MAX_WAIT,
        breaker: BreakerSettings = _BREAKER,
    ):
        self.timeouts = timeouts
        # One circuit breaker per upstream URL, for this process (shim/upstream/failover.py).
        self.breakers = Breakers(breaker.failures, breaker.cooldown)
        self.retries = retries
        self.max_response_bytes = max_response_bytes
        self.retry_max_wait = retry_max_wait  # a longer Retry-After is passed on, not waited out
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}
        self._header_sets: dict[tuple[object, ...], tuple[httpx.Headers, Prepared | None]] = {}
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200, keepalive_expiry=60.0)
        # aiohttp behind the httpx API unless a test passes a transport (bench/README.md: httpx's
        # own costs 1.4-9 ms of CPU per request, growing with the connections it pools). Requests
        # go to it straight, not through ``client.send`` (auth, redirects and cookie jar, none of
        # which a proxy wants, cost ~55 us a request); the transport reads proxies itself.
        self.transport = transport or build_transport(limits)
        self.client = httpx.AsyncClient(
            transport=self.transport,
            # Per socket read; the first-byte and idle limits are enforced around it (``send`` and
            # the streaming glue), so neither can cut the other short.
            timeout=httpx.Timeout(
                connect=timeouts.connect,
                read=max(timeouts.first_byte, timeouts.idle),
                write=60.0,
                pool=30.0,
            ),
            limits=limits,
            follow_redirects=False,
            trust_env=False,  # never used to send: no proxy transports of its own
        )
        # user-agent…; ``identity``: a compressed answer costs CPU here and hides the size limit
        self._default_headers = {**dict(self.client.headers.items()), "accept-encoding": "identity"}
        self._timeouts = self.client.timeout.as_dict()
        self._extensions = {"timeout": self._timeouts}
        # The shim's own transport takes a POST without an ``httpx.Request`` (``_post``).
        self._direct = self.transport if isinstance(self.transport, AiohttpTransport) else None
        # Sees each answer as it opens and returns its byte stream (wrapped to note the chunks):
        # set by the recording (``shim.fixtures.capture.tap_upstream``), else nothing is added.
        self.tap: Tap | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    def _request(
        self,
        resolved: Resolved,
        method: str,
        path: str,
        body: bytes | None,
        extra: dict[str, str] | None = None,
    ) -> httpx.Request:
        route, auth = resolved.route, resolved.dialect.auth
        url = self._url(route.upstream + path, auth.query)
        # ``stream=``: httpx adds no headers of its own (``_headers`` has them all, in the order
        # ``content=`` would give), which spares it normalising every header twice. The request
        # holds a copy of the cached headers, completed here.
        request = httpx.Request(
            method,
            url,
            headers=self._headers(resolved, url, body is not None)[0],
            stream=httpx.ByteStream(body or b""),
            extensions=self._extensions,
        )
        headers = request.headers
        if extra:  # per request (trace context): never cached with the route's headers
            headers.update(extra)
        if body is not None:
            headers["Content-Length"] = str(len(body))  # last (the transport counts on it)
        request.read()  # ``request.content``, as ``content=`` sets it
        return request

    def _headers(
        self, resolved: Resolved, url: httpx.URL, has_body: bool
    ) -> tuple[httpx.Headers, Prepared | None]:
        """A request's headers but its length, checked and built once per route and key
        (building them for each request cost ~25 µs, bench/README.md); and the same as the
        shim's transport takes them (``None``: another transport)."""
        route, auth = resolved.route, resolved.dialect.auth
        cache_key = (route.upstream, *route.headers.items(), auth.header, resolved.upstream_key, has_body)
        cached = self._header_sets.get(cache_key)
        if cached is not None:
            return cached
        headers = {**self._default_headers, "accept": "application/json, text/event-stream"}
        headers.update((name.lower(), value) for name, value in route.headers.items())
        for name, value in route.headers.items():
            if (problem := header_value_problem(value)) is not None:
                raise UpstreamMisconfigured(
                    f"The route's header {name!r} {problem}; nothing was sent upstream."
                )
        if has_body:
            headers["content-type"] = "application/json"
        if resolved.upstream_key:
            if (problem := header_value_problem(resolved.upstream_key)) is not None:
                raise UpstreamMisconfigured(f"The upstream API key {problem}; nothing was sent upstream.")
            if auth.header == "api-key":
                headers["api-key"] = resolved.upstream_key
            else:
                headers["authorization"] = f"Bearer {resolved.upstream_key}"
        if len(self._header_sets) >= 1024:  # one entry per route and key: never unbounded
            self._header_sets.clear()
        host = ("Host", url.netloc.decode("ascii"))
        built = httpx.Headers([host, *headers.items()])
        prepared = self._direct.prepare(built) if self._direct is not None else None
        self._header_sets[cache_key] = (built, prepared)
        return built, prepared

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """The open answer (its body not read yet)."""
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    def _url(self, url: str, query: dict[str, str]) -> httpx.URL:
        """Parsed once per upstream path: httpx's URL parsing (IP and IDNA checks) is costly."""
        key = (url, tuple(query.items()))
        parsed = self._urls.get(key)
        if parsed is None:
            if len(self._urls) >= 1024:  # paths are fixed today; never let the cache grow unbounded
                self._urls.clear()
            parsed = httpx.URL(url)
            parsed = self._urls[key] = parsed.copy_merge_params(query) if query else parsed
        return parsed

    async def send(
        self, resolved: Resolved, path: str, body: bytes, *, stream: bool, retries: int | None = None
    ) -> httpx.Response:
        """POST and return the open response (status < 400), or raise a ``ShimError``.

        A whole answer (``stream=False``) is read before returning; a streaming one is returned
        open, its body bounded by the total time limit and the size limit. Observed (a span, the
        answer's token usage) only when traces or a token limit want it (``shim.tracing``).
        ``retries``: this request's (``shim.upstream.failover`` moves on to the next upstream
        instead)."""
        call = upstream_call(
            resolved.route, resolved.upstream_model, path, body, resolved.upstream_key, redact
        )
        if call is None:
            return await self._post(resolved, path, body, stream=stream, retries=retries)
        with call:
            return call.answered(
                await self._post(resolved, path, body, stream=stream, retries=retries, extra=call.headers),
                stream,
            )

    async def _post(
        self,
        resolved: Resolved,
        path: str,
        body: bytes,
        *,
        stream: bool,
        retries: int | None,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        retries = self.retries if retries is None else retries
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.total
        note_upstream(resolved.route.upstream)
        attempt = 0
        while True:
            request: httpx.Request | None = None
            prepared: Prepared | None = None
            if self._direct is not None and self.tap is None and not extra:
                url = self._url(resolved.route.upstream + path, resolved.dialect.auth.query)
                prepared = self._headers(resolved, url, True)[1]
            if prepared is None:
                request = self._request(resolved, "POST", path, body, extra)
            delay: float | None = None
            try:
                first_byte = min(deadline, loop.time() + self.timeouts.first_byte)
                if request is None:
                    assert self._direct is not None and prepared is not None
                    response = await _before(
                        loop, first_byte, self._direct.post(url, prepared, body, self._timeouts)
                    )
                else:
                    response = await _before(loop, first_byte, self._send(request))
            except httpx.ConnectError as exc:  # nothing reached the upstream: safe to send again
                note_upstream_error("connect")
                unreachable = UpstreamUnreachable(
                    f"The upstream could not be reached: {exc.__class__.__name__}."
                )
                unreachable.sent = False
                error: ShimError = unreachable
                delay = 0.0
            except (httpx.ConnectTimeout, httpx.PoolTimeout):  # never left: failover may re-send
                note_upstream_error("timeout")
                timeout = UpstreamTimeout("The upstream did not answer in time.")
                timeout.sent = False
                raise timeout from None
            except (httpx.TimeoutException, TimeoutError):
                note_upstream_error("timeout")
                raise UpstreamTimeout("The upstream did not answer in time.") from None
            except InvalidAnswer as exc:
                note_upstream_error("invalid_response")
                raise UpstreamInvalidResponse(str(exc)) from None
            except (httpx.ProxyError, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
                note_upstream_error("connect")  # (a configuration problem: trying again cannot help)
                kind = (
                    UpstreamMisconfigured
                    if isinstance(exc, httpx.LocalProtocolError)
                    else UpstreamUnreachable
                )
                unsent = kind(f"The upstream could not be reached: {exc}")
                unsent.sent = False
                raise unsent from None
            except httpx.TransportError as exc:  # the request may have arrived: never re-sent
                note_upstream_error("reset")
                raise UpstreamReset(
                    "The upstream connection broke before an answer "
                    f"({exc.__class__.__name__}; not retried: the upstream may have received the request)."
                ) from None
            else:
                if self.tap is not None and request is not None:  # shim serve --record, /inspector
                    response.stream = self.tap(resolved, request, response)
                if response.status_code < 400:
                    await self._bound(response, deadline, loop)
                    if not stream:
                        await self._read_whole(response)
                    return response
                data = await self._error_body(response, deadline)
                retry_after = response.headers.get("retry-after")
                note_upstream_error(f"status_{response.status_code}")
                error = upstream_error(response.status_code, data, retry_after, resolved.dialect.errors)
                error.message = redact(error.message, resolved.upstream_key)
                if response.status_code in _RETRY_STATUS and not isinstance(error, ContextLengthExceeded):
                    delay = _retry_after(retry_after) or 0.0
            if delay is None or attempt >= retries or delay > self.retry_max_wait:
                raise error
            backoff = min(max(delay, 0.25 * 2**attempt) * (1 + random.random() * 0.25), 30.0)
            if loop.time() + backoff >= deadline:
                raise error
            attempt += 1
            note_retry()
            await asyncio.sleep(backoff)

    async def _bound(
        self, response: httpx.Response, deadline: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """The answer's body decoded, then bounded by the total time and the size limit; raises
        ``UpstreamError`` (the answer closed) for a content-encoding the shim cannot decode."""
        try:
            _decoded(response)
        except UpstreamInvalidResponse:
            note_upstream_error("invalid_response")
            await response.aclose()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Bounded(response.stream, self.max_response_bytes, deadline, loop)

    @staticmethod
    async def _error_body(response: httpx.Response, deadline: float) -> bytes:
        """The start of an error answer, decoded (64 KiB is plenty for a message); never the
        whole of a huge or endless one."""
        data = b""
        try:
            _decoded(response)
        except UpstreamInvalidResponse as exc:
            await response.aclose()
            return exc.message.encode()
        try:
            async with asyncio.timeout_at(deadline):
                async for piece in response.aiter_raw():
                    data += piece
                    if len(data) >= _ERROR_BODY_BYTES:
                        break
        except STREAM_FAILURES:  # an undecodable piece included: keep what came
            pass
        finally:
            await response.aclose()
        return data[:_ERROR_BODY_BYTES]

    @staticmethod
    async def _read_whole(response: httpx.Response) -> None:
        stream = response.stream
        try:
            if isinstance(stream, _Bounded):
                # read as one piece: httpx's ``aread`` goes through three async generators
                content = await stream.read_all()
                response._content = content  # what ``aread`` sets (tests/upstream: shape test)
                response.is_stream_consumed = True
                if stream.released:  # the transport's body: read to its end, connection freed
                    response.is_closed = True
                else:
                    await response.aclose()
            else:
                await response.aread()
        except STREAM_FAILURES as exc:
            await response.aclose()
            raise as_upstream_error(exc) from None

    async def get_json(self, resolved: Resolved, path: str) -> bytes:
        deadline = asyncio.get_running_loop().time() + self.timeouts.total
        try:
            response = await self._send(self._request(resolved, "GET", path, None))
        except httpx.TimeoutException:
            raise UpstreamTimeout("The upstream did not answer in time.") from None
        except httpx.TransportError as exc:
            raise UpstreamUnreachable(
                f"The upstream could not be reached: {exc.__class__.__name__}."
            ) from None
        if response.status_code >= 400:
            raise upstream_error(response.status_code, await self._error_body(response, deadline))
        await self._bound(response, deadline)
        await self._read_whole(response)
        return response.content

"""The one httpx client, and the only place that talks to upstreams.

Before the first byte reaches our client, transient failures (connect errors, 429, 502, 503)
are retried with exponential backoff and jitter, honouring ``Retry-After``; after that an error
is returned in the envelope. Once a stream has started nothing is retried: the pump
(``shim.turns.pump``) ends the stream with a failure instead, from the same error tree
(``shim.upstream.errors.as_upstream_error``).

Every answer body is read through ``_Bounded``, which enforces the total time limit and the
maximum answer size for streaming and whole answers alike. An upstream's error message is passed
on, but never with the upstream credential in it (some vendors echo the key they were sent).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import httpx

from shim.errors import ShimError, UpstreamTimeout, UpstreamTooLarge, UpstreamUnreachable
from shim.settings import Timeouts
from shim.telemetry import note_retry, note_upstream, note_upstream_error
from shim.upstream.errors import STREAM_FAILURES, as_upstream_error, upstream_error
from shim.upstream.redaction import redact
from shim.upstream.routing import Resolved
from shim.upstream.transport import fast_transport

__all__ = ["Tap", "UpstreamClient", "redact"]

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
Tap = Callable[[Resolved, httpx.Request, httpx.Response], httpx.AsyncByteStream | httpx.SyncByteStream]
DEFAULT_RETRY_MAX_WAIT = 20.0

_RETRY_STATUS = frozenset({429, 502, 503})
_ERROR_BODY_BYTES = 65536


class _Bounded(httpx.AsyncByteStream):
    """An answer body that may not outlast ``deadline`` (loop time) nor exceed ``max_bytes``."""

    def __init__(self, inner: httpx.AsyncByteStream, max_bytes: int, deadline: float) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self.deadline = deadline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        iterator = self.inner.__aiter__()
        size = 0
        while True:
            try:
                async with asyncio.timeout_at(self.deadline):
                    chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                if loop.time() < self.deadline:
                    raise
                raise UpstreamTimeout("The upstream answer exceeded the total time limit.") from None
            size += len(chunk)
            if size > self.max_bytes:
                raise UpstreamTooLarge(f"The upstream answer exceeded {self.max_bytes} bytes.")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


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
    ):
        self.timeouts = timeouts
        self.retries = retries
        self.max_response_bytes = max_response_bytes
        self.retry_max_wait = retry_max_wait  # a longer Retry-After is passed on, not waited out
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200, keepalive_expiry=60.0)
        # Our keep-alive transport unless a test passes one (bench/README.md: httpx's own costs
        # 0.6-7 ms of CPU per request, growing with the connections it pools). Requests go to it
        # straight, not through ``client.send`` (auth, redirects and cookie jar, none of which a
        # proxy wants, cost ~55 us a request); the client remains for a proxy from the environment.
        self.transport = transport or fast_transport(limits)
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
        )
        self._default_headers = dict(self.client.headers.items())  # user-agent, accept-encoding…
        self._extensions = {"timeout": self.client.timeout.as_dict()}
        # Sees each answer as it opens and returns its byte stream (wrapped to note the chunks):
        # set by the recording (``shim.fixtures.capture.tap_upstream``), else nothing is added.
        self.tap: Tap | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    def _request(self, resolved: Resolved, method: str, path: str, body: bytes | None) -> httpx.Request:
        route, auth = resolved.route, resolved.dialect.auth
        headers = {**self._default_headers, "accept": "application/json, text/event-stream"}
        headers.update((name.lower(), value) for name, value in route.headers.items())
        if body is not None:
            headers["content-type"] = "application/json"
        if resolved.upstream_key:
            if auth.header == "api-key":
                headers["api-key"] = resolved.upstream_key
            else:
                headers["authorization"] = f"Bearer {resolved.upstream_key}"
        url = self._url(route.upstream + path, auth.query)
        return httpx.Request(method, url, content=body, headers=headers, extensions=dict(self._extensions))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """The open answer (its body not read yet)."""
        if self.transport is None:
            return await self.client.send(request, stream=True)
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

    async def send(self, resolved: Resolved, path: str, body: bytes, *, stream: bool) -> httpx.Response:
        """POST and return the open response (status < 400), or raise a ``ShimError``.

        A whole answer (``stream=False``) is read before returning; a streaming one is returned
        open, its body bounded by the total time limit and the size limit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.total
        note_upstream(resolved.route.upstream)
        attempt = 0
        while True:
            request = self._request(resolved, "POST", path, body)
            delay: float | None = None
            try:
                async with asyncio.timeout_at(min(deadline, loop.time() + self.timeouts.first_byte)):
                    response = await self._send(request)
            except (httpx.TimeoutException, TimeoutError):
                note_upstream_error("timeout")
                raise UpstreamTimeout("The upstream did not answer in time.") from None
            except httpx.TransportError as exc:
                note_upstream_error("connect" if isinstance(exc, httpx.ConnectError) else "reset")
                error: ShimError = UpstreamUnreachable(
                    f"The upstream could not be reached: {exc.__class__.__name__}."
                )
                delay = 0.0
            else:
                if self.tap is not None:  # shim serve --record, /inspector
                    response.stream = self.tap(resolved, request, response)
                if response.status_code < 400:
                    assert isinstance(response.stream, httpx.AsyncByteStream)
                    response.stream = _Bounded(response.stream, self.max_response_bytes, deadline)
                    if not stream:
                        await self._read_whole(response)
                    return response
                data = await self._error_body(response, deadline)
                retry_after = response.headers.get("retry-after")
                note_upstream_error(f"status_{response.status_code}")
                error = upstream_error(response.status_code, data, retry_after)
                error.message = redact(error.message, resolved.upstream_key)
                if response.status_code in _RETRY_STATUS:
                    delay = _retry_after(retry_after) or 0.0
            if delay is None or attempt >= self.retries or delay > self.retry_max_wait:
                raise error
            backoff = min(max(delay, 0.25 * 2**attempt) * (1 + random.random() * 0.25), 30.0)
            if loop.time() + backoff >= deadline:
                raise error
            attempt += 1
            note_retry()
            await asyncio.sleep(backoff)

    @staticmethod
    async def _error_body(response: httpx.Response, deadline: float) -> bytes:
        """The start of an error answer (64 KiB is plenty for a message); never the whole of a
        huge or endless one."""
        data = b""
        try:
            async with asyncio.timeout_at(deadline):
                async for piece in response.aiter_raw():
                    data += piece
                    if len(data) >= _ERROR_BODY_BYTES:
                        break
        except (httpx.HTTPError, TimeoutError):
            pass
        finally:
            await response.aclose()
        return data[:_ERROR_BODY_BYTES]

    @staticmethod
    async def _read_whole(response: httpx.Response) -> None:
        try:
            await response.aread()
        except STREAM_FAILURES as exc:
            await response.aclose()
            raise as_upstream_error(exc) from None

    async def get_json(self, resolved: Resolved, path: str) -> bytes:
        try:
            response = await self._send(self._request(resolved, "GET", path, None))
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise UpstreamTimeout("The upstream did not answer in time.") from None
        except httpx.TransportError as exc:
            raise UpstreamUnreachable(
                f"The upstream could not be reached: {exc.__class__.__name__}."
            ) from None
        if response.status_code >= 400:
            raise upstream_error(response.status_code, response.content)
        return response.content

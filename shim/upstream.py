"""The one httpx client, and the only place that talks to upstreams.

Before the first byte reaches our client, transient failures (connect errors, 429, 502, 503)
are retried with exponential backoff and jitter, honouring ``Retry-After``; after that an error
is returned in the envelope. Once a stream has started nothing is retried: the glue ends the
stream with a failure instead.
"""

from __future__ import annotations

import asyncio
import random

import httpx

from shim.errors import ShimError, UpstreamError, UpstreamTimeout
from shim.routing import Resolved
from shim.settings import Timeouts
from shim.translate.upstream_errors import upstream_error

__all__ = ["UpstreamClient"]

_RETRY_STATUS = frozenset({429, 502, 503})


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class UpstreamClient:
    def __init__(
        self, timeouts: Timeouts, retries: int = 2, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.timeouts = timeouts
        self.retries = retries
        self.client = httpx.AsyncClient(
            transport=transport,
            # Per socket read; the first-byte and idle limits are enforced around it (``send`` and
            # the streaming glue), so neither can cut the other short.
            timeout=httpx.Timeout(
                connect=timeouts.connect,
                read=max(timeouts.first_byte, timeouts.idle),
                write=60.0,
                pool=30.0,
            ),
            limits=httpx.Limits(max_connections=2000, max_keepalive_connections=200, keepalive_expiry=60.0),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def _request(self, resolved: Resolved, method: str, path: str, body: bytes | None) -> httpx.Request:
        route, auth = resolved.route, resolved.dialect.auth
        headers = {"accept": "application/json, text/event-stream", **route.headers}
        if body is not None:
            headers["content-type"] = "application/json"
        if resolved.upstream_key:
            if auth.header == "api-key":
                headers["api-key"] = resolved.upstream_key
            else:
                headers["authorization"] = f"Bearer {resolved.upstream_key}"
        return self.client.build_request(
            method, route.upstream + path, content=body, headers=headers, params=auth.query or None
        )

    async def send(self, resolved: Resolved, path: str, body: bytes, *, stream: bool) -> httpx.Response:
        """POST and return the open response (status < 400), or raise a ``ShimError``."""
        attempt = 0
        while True:
            request = self._request(resolved, "POST", path, body)
            delay: float | None = None
            try:
                async with asyncio.timeout(self.timeouts.first_byte):
                    response = await self.client.send(request, stream=True)
            except (httpx.TimeoutException, TimeoutError):
                raise UpstreamTimeout("The upstream did not answer in time.") from None
            except httpx.TransportError as exc:
                error: ShimError = UpstreamError(
                    f"The upstream could not be reached: {exc.__class__.__name__}.",
                    code="upstream_unreachable",
                )
                delay = 0.0
            else:
                if response.status_code < 400:
                    if not stream:
                        try:
                            await response.aread()
                        except httpx.TimeoutException:
                            await response.aclose()
                            raise UpstreamTimeout("The upstream stopped answering.") from None
                        except httpx.TransportError:
                            await response.aclose()
                            raise UpstreamError(
                                "The upstream connection broke.", code="upstream_reset"
                            ) from None
                    return response
                try:
                    data = await response.aread()
                except httpx.HTTPError:
                    data = b""
                finally:
                    await response.aclose()
                retry_after = response.headers.get("retry-after")
                error = upstream_error(response.status_code, data, retry_after)
                if response.status_code in _RETRY_STATUS:
                    delay = _retry_after(retry_after) or 0.0
            if delay is None or attempt >= self.retries:
                raise error
            backoff = max(delay, 0.25 * 2**attempt) * (1 + random.random() * 0.25)
            attempt += 1
            await asyncio.sleep(min(backoff, 30.0))

    async def get_json(self, resolved: Resolved, path: str) -> bytes:
        try:
            response = await self.client.send(self._request(resolved, "GET", path, None))
        except httpx.TimeoutException:
            raise UpstreamTimeout("The upstream did not answer in time.") from None
        except httpx.TransportError as exc:
            raise UpstreamError(f"The upstream could not be reached: {exc.__class__.__name__}.") from None
        if response.status_code >= 400:
            raise upstream_error(response.status_code, response.content)
        return response.content

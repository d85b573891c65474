"""The MCP client's POST without ``ClientSession.request``'s per-request work (issue 18).

``ClientSession._request`` costs about half of an MCP exchange's Python: the default-headers
merge, URL re-parsing, a timeout handle, cookie filtering, middlewares, traces, the redirect and
retry machinery. A JSON-RPC POST needs none of it per request: its headers change only when the
session learns its id and protocol version (merged once then), redirects are the client's own
(``streamable.py``), a POST is never re-sent (aiohttp would not either: RFC 9112 §9.3.1), and
there is no total timeout (each exchange runs under its caller's). So ``Poster.post`` makes the
calls ``_request`` makes — ``ClientRequest``, the connector's ``connect``, the protocol's
response settings, ``send``, ``start`` — as ``shim/upstream/transport.py`` does for the upstream,
with the same session's connector, cookie jar and parser settings: the same bytes go out, the
same answer comes back. The body goes out in one write with the head (one TCP segment, as
aiohttp's body writer coalesces them), in the same loop turn, instead of from the task aiohttp
starts for it (Python 3.11 has no eager tasks); not when the connection's writing is paused.

What still goes through ``ClientSession.post``: a proxied session (aiohttp's proxy handling) and
a URL with credentials or a scheme ``ClientRequest`` alone would not check (``usable``).
``tests/hosted/test_streamable.py`` checks that the pieces keep their shape.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.helpers import TimerNoop
from multidict import CIMultiDict
from yarl import URL

__all__ = ["Poster", "merged"]

_NO_TIMER = TimerNoop()  # ``ClientTimeout(total=None)``: what ``ClientSession`` uses then too
# ``ClientSession``'s defaults for the parser (the MCP client's session sets none of them)
_READ_BUFSIZE = 2**16
_MAX_LINE = 8190
_MAX_FIELD = 8190
_MAX_HEADERS = 128


def merged(defaults: CIMultiDict[str], headers: dict[str, str]) -> list[tuple[str, str]]:
    """``defaults`` with ``headers`` over them, as ``ClientSession`` merges a request's headers
    into its default ones (a name given again replaces every value it had), as the pairs
    ``ClientRequest`` copies."""
    result = CIMultiDict(defaults)
    for name, value in headers.items():
        result[name] = value
    return list(result.items())


def usable(url: URL, proxy: URL | None) -> bool:
    """Whether ``Poster.post`` sends to ``url`` as ``ClientSession.post`` would: no proxy, an
    HTTP scheme and a host, no credentials (basic auth) and no fragment in the URL."""
    return (
        proxy is None
        and url.scheme in ("http", "https")
        and bool(url.raw_host)
        and not (url.raw_user or url.raw_password or url.raw_fragment)
    )


class _Head:
    """Stands in for the connection's transport while ``ClientRequest.send`` writes the request's
    head (it never suspends there: no body, no traces), so the head goes out with the body in
    one write, one TCP segment, as aiohttp's own body writer coalesces them."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def writelines(self, data: list[bytes]) -> None:
        self.parts.extend(data)

    def is_closing(self) -> bool:
        return False


class Poster:
    """POSTs through ``session``'s connector; ``timeout``: the session's (its connect limits)."""

    def __init__(self, session: aiohttp.ClientSession, timeout: aiohttp.ClientTimeout) -> None:
        self.session = session
        self.timeout = timeout

    async def post(self, url: URL, headers: list[tuple[str, str]], body: bytes) -> aiohttp.ClientResponse:
        """The answer's head (its body to be read), ``body`` POSTed with ``headers`` (merged
        already, without the length)."""
        session = self.session
        connector = session.connector
        assert connector is not None
        jar = session.cookie_jar
        request_headers = [*headers, ("Content-Length", str(len(body)))]
        response: aiohttp.ClientResponse | None = None
        try:
            req = aiohttp.ClientRequest(
                "POST",
                url,
                headers=request_headers,
                cookies=jar.filter_cookies(url) if len(jar) else None,
                loop=session._loop,
                timer=_NO_TIMER,
                session=session,
            )
            try:
                conn = await connector.connect(req, traces=[], timeout=self.timeout)
            except TimeoutError as exc:
                raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {req.url}") from exc
            protocol = conn.protocol
            assert protocol is not None
            protocol.set_response_params(
                timer=_NO_TIMER,
                skip_payload=False,
                read_until_eof=True,
                auto_decompress=True,
                read_timeout=self.timeout.sock_read,
                read_bufsize=_READ_BUFSIZE,
                timeout_ceil_threshold=connector._timeout_ceil_threshold,
                max_line_size=_MAX_LINE,
                max_field_size=_MAX_FIELD,
                max_headers=_MAX_HEADERS,
            )
            inline = bool(body) and not protocol.writing_paused
            if body and not inline:  # aiohttp's writer task waits for the connection to drain
                req.update_body_from_data(body)
            try:
                if inline:
                    transport = protocol.transport
                    if transport is None or transport.is_closing():
                        raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
                    head = _Head()
                    protocol.transport = head  # type: ignore[assignment]
                    try:
                        response = await req.send(conn)
                    finally:
                        protocol.transport = transport
                    transport.write(b"".join([*head.parts, body]))
                else:
                    response = await req.send(conn)
                await response.start(conn)
            except BaseException:
                if response is not None:
                    response.close()
                conn.close()
                raise
        except aiohttp.ClientError:
            raise
        except OSError as exc:  # as ``ClientSession._request`` wraps it
            if exc.errno is None and isinstance(exc, asyncio.TimeoutError):
                raise
            raise aiohttp.ClientOSError(*exc.args) from exc
        if response._raw_cookie_headers:  # as ``ClientSession._request`` keeps them
            jar.update_cookies_from_headers(response._raw_cookie_headers, response.url)
        return response

"""One MCP session over the streamable HTTP transport: JSON-RPC 2.0 messages POSTed to the
server's URL with aiohttp, answered by a JSON body or an SSE stream.

The shim's own client for this transport (the ``mcp`` SDK's — anyio task groups and memory
streams, httpx, pydantic models — cost ~6 ms of the shim's CPU per hosted response, most of the
~10 ms the hosted round added; bench/README.md, issue 18). What it speaks (the MCP specification,
"Transports", 2025-03-26 onwards, as the SDK's ``streamable_http`` client does):

- every message a POST with ``Accept: application/json, text/event-stream``; a request's answer
  is a JSON body or an SSE stream carrying it, perhaps after notifications (progress, logging:
  ignored) and requests of the server's own (``ping`` is answered, anything else gets a JSON-RPC
  "method not found" error, as the SDK's client answers what it cannot do); a stream that ends
  without the answer is an error, never a wait;
- ``initialize`` with the latest protocol version the SDK's client sends; the server's version
  must be one the SDK supports; then ``notifications/initialized``; the ``Mcp-Session-Id`` the
  server gave is sent on every later request, with ``MCP-Protocol-Version``;
- an answer's stream that ends first, after events with ids, is resumed with a GET carrying
  ``Last-Event-ID`` (after the server's ``retry``; at most ``_RESUMES`` times); events without
  data (a server's priming events) carry only their id;
- a 404 to a request carrying the session id: the server has forgotten the session
  (``SessionGone``: the request did not run there);
- closing sends DELETE with the session id (a 405 or any failure is ignored: the server may not
  allow clients to end sessions).

Redirects are followed only within the origin, keeping the method (307/308), each new URL
checked by the ``Guard`` first (as the SDK's ``stream_within_origin``); any other redirect is an
HTTP error. An answer body larger than ``max_body`` bytes is refused. The caller bounds each
operation's time (``asyncio.timeout``); the socket's own timeouts are a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
import msgspec
from yarl import URL

from shim.errors import McpServerNotAllowed
from shim.hosted.poster import Poster, merged, usable
from shim.hosted.servers import Guard
from shim.hosted.tool_output import problem
from shim.settings import environment, proxy_for

__all__ = [
    "LATEST",
    "SUPPORTED",
    "HttpStatus",
    "InvalidAnswer",
    "RpcError",
    "SessionGone",
    "StreamableClient",
    "TooLarge",
    "tls",
]

# The SDK client's (mcp.types.LATEST_PROTOCOL_VERSION, mcp.shared.version.SUPPORTED_PROTOCOL_VERSIONS;
# tests/hosted/test_streamable.py fails if the SDK's move on).
LATEST = "2025-11-25"
SUPPORTED = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
CLIENT_INFO = {"name": "shim", "version": "1"}

_JSON = "application/json"
_SSE = "text/event-stream"
_ACCEPT = f"{_JSON}, {_SSE}"
_REDIRECTS = (307, 308)  # the method and body kept; 301/302/303 would turn a POST into a GET
_MAX_REDIRECTS = 20
_METHOD_NOT_FOUND = -32601
_GONE = 32600  # the SDK's code for "Session terminated" (a 404): kept so the errors read the same
_LARGE = 1 << 20  # aiohttp's limit for a body sent as bytes
_RESUMES = 3  # times an answer's event stream that ended early is resumed
_GRACE = 0.25  # seconds an answered event stream is given to end (``_end_later``, ``_drain``)
_decode = msgspec.json.decode
_encode = msgspec.json.encode


class RpcError(Exception):
    """The server answered the request with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class SessionGone(RpcError):
    """404 to a request of an open session: the server does not know it (the request did not run)."""

    def __init__(self) -> None:
        super().__init__(_GONE, "Session terminated")


class HttpStatus(Exception):
    """The server answered with an HTTP error status (or a redirect not followed)."""

    def __init__(self, status: int, why: str = "") -> None:
        super().__init__(f"HTTP {status}{': ' + why if why else ''}")
        self.status = status


class InvalidAnswer(Exception):
    """The server's answer is not the JSON-RPC message it should be (``code``: JSON-RPC's)."""

    def __init__(self, message: str, code: int = -32603) -> None:
        super().__init__(message)
        self.code = code


class TooLarge(InvalidAnswer):
    """The answer's body is over the client's ``max_body`` bytes (it was not read further)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


@functools.cache
def tls() -> ssl.SSLContext:
    """httpx's default context (certifi or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made once: loading
    the CA bundle costs ~35 ms of CPU (issue 18)."""
    return httpx.create_ssl_context()


class StreamableClient:
    """One session with one server. One operation at a time (``sessions.py`` sees to it)."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        guard: Guard,
        *,
        connect_timeout: float,
        max_body: int,
    ) -> None:
        self.url = URL(url)
        self.guard = guard
        self.max_body = max_body
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.schemas: dict[str, Any] = {}  # each listed tool's outputSchema (None: it has none)
        self._ids = 0
        self._checked: set[URL] = set()  # URLs the guard permitted
        self._headers = {"Accept": _ACCEPT, "Content-Type": _JSON}
        # Only the connect is timed here: every exchange runs under its caller's timeout
        # (``connect_timeout`` for ``initialize`` and the DELETE, ``call_timeout`` for an
        # operation), and a read timeout would re-arm a timer on every chunk received.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls(), limit=8),
            headers=dict(headers),
            timeout=timeout,
            # No ``trust_env``: aiohttp would read the proxy settings and ~/.netrc again in a thread
            # on every request; the proxy is chosen once, below.
        )
        self.proxy = _proxy(self.url)
        self.poster = Poster(self.http, timeout)
        self._merged: list[tuple[str, str]] | None = None  # the POST's headers (``_post_headers``)
        self._ending: dict[aiohttp.ClientResponse, asyncio.TimerHandle] = {}  # ``_end_later``

    @property
    def unended(self) -> bool:
        """An answered event stream has not ended yet (``_end_later``)."""
        return bool(self._ending)

    # -- the protocol -------------------------------------------------------------------------

    async def initialize(self) -> dict[str, Any]:
        result = await self.request(
            "initialize",
            {"protocolVersion": LATEST, "capabilities": {}, "clientInfo": CLIENT_INFO},
        )
        version = result.get("protocolVersion")
        if version not in SUPPORTED:
            raise InvalidAnswer(f"Unsupported protocol version from the server: {version}")
        self.protocol_version = version
        self._headers["MCP-Protocol-Version"] = version
        self._merged = None
        await self.notify("notifications/initialized")
        return result

    async def list_tools(self, cursor: str | None = None) -> dict[str, Any]:
        page = await self.request("tools/list", {"cursor": cursor} if cursor else None)
        tools = page.get("tools")
        if not isinstance(tools, list) or not all(_is_tool(t) for t in tools):
            raise InvalidAnswer("tools/list: `tools` is not a list of tools")
        for tool in tools:
            self.schemas[tool["name"]] = tool.get("outputSchema")
        cursor = page.get("nextCursor")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidAnswer("tools/list: `nextCursor` is not a string")
        return page

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The result, its structured output checked against the tool's ``outputSchema`` (a
        ``RuntimeError`` when it does not conform, as the SDK's ``ClientSession.call_tool``)."""
        result = await self.request("tools/call", {"name": name, "arguments": arguments})
        content = result.get("content")
        if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
            raise InvalidAnswer("tools/call: `content` is not a list of blocks")
        if not result.get("isError"):
            if name not in self.schemas:
                await self.list_tools()  # the output schemas refreshed, as the SDK does
            found = problem(
                name, name in self.schemas, self.schemas.get(name), result.get("structuredContent")
            )
            if found is not None:
                raise RuntimeError(found)
        return result

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids, "method": method}
        if params is not None:
            message["params"] = params
        return await self._exchange(message, self._ids)

    async def notify(self, method: str) -> None:
        await self._exchange({"jsonrpc": "2.0", "method": method}, None)

    async def aclose(self, within: float) -> None:
        """Ends the session on the server (DELETE, waiting ``within`` seconds at most; any failure
        ignored) and closes the connections."""
        try:
            if self.session_id is not None:
                try:
                    async with asyncio.timeout(within):
                        self._permit(self.url)
                        async with self.http.delete(
                            self.url, headers=self._headers_now(), allow_redirects=False, proxy=self.proxy
                        ) as response:
                            await response.read()  # 405: the server does not let clients end sessions
                except (aiohttp.ClientError, OSError, McpServerNotAllowed):
                    pass  # gone already, unreachable, or too slow: nothing left to end
        finally:
            for response in list(self._ending):
                self._ended(response)
            await self.http.close()

    # -- HTTP -----------------------------------------------------------------------------------

    def _headers_now(self) -> dict[str, str]:
        if self.session_id is None:
            return self._headers
        return {**self._headers, "Mcp-Session-Id": self.session_id}

    def _post_headers(self) -> list[tuple[str, str]]:
        """The headers of a POST as ``ClientSession`` would send them, merged once per state
        (they change when the session learns its id and protocol version)."""
        if self._merged is None:
            self._merged = merged(self.http.headers, self._headers_now())
        return self._merged

    def _permit(self, url: URL) -> None:
        if url in self._checked:
            return
        if not self.guard.permits(httpx.URL(str(url))):
            self.guard.refused = f"a request to {url.scheme}://{url.host} is outside the allow list"
            raise McpServerNotAllowed(f"MCP server {self.guard.server.label!r}: {self.guard.refused}")
        self._checked.add(url)

    async def _post(self, body: bytes) -> aiohttp.ClientResponse:
        """The answer to ``body`` POSTed to the server, following redirects within its origin."""
        url = self.url
        for _ in range(_MAX_REDIRECTS + 1):
            self._permit(url)
            # A large body as a stream: aiohttp warns that bytes over 1 MiB block the loop.
            if usable(url, self.proxy):
                response = await self.poster.post(url, self._post_headers(), body)
            else:
                data = body if len(body) <= _LARGE else io.BytesIO(body)
                response = await self.http.post(
                    url, data=data, headers=self._headers_now(), allow_redirects=False, proxy=self.proxy
                )
            if not 300 <= response.status < 400:
                return response
            target = _within_origin(url, response)
            response.release()
            if target is None:
                raise HttpStatus(response.status, "a redirect that leaves the server's origin, not followed")
            url = target
        raise HttpStatus(response.status, "too many redirects")

    async def _exchange(self, message: dict[str, Any], wanted: int | None) -> dict[str, Any]:
        """POSTs ``message``; the result of the answer whose id is ``wanted`` (none for a
        notification or a reply)."""
        response = await self._post(_encode(message))
        ending = False  # an answered event stream left to end on its own (``_end_later``)
        try:
            status = response.status
            if status == 404 and self.session_id is not None:
                raise SessionGone()
            if status >= 400:
                raise HttpStatus(status)
            if message.get("method") == "initialize":
                self.session_id = response.headers.get("mcp-session-id") or None
                self._merged = None
            if wanted is None:
                return {}  # 202 Accepted, or anything else: a notification has no answer
            kind = response.headers.get("Content-Type", "").lower()
            if kind.startswith(_JSON):
                return self._answer(_parse(await self._read_all(response)), wanted)
            if kind.startswith(_SSE):
                found = await self._stream(response, wanted)
                ending = self._end_later(response)
                return found
            raise InvalidAnswer(f"Unexpected content type: {kind or 'none'}")
        finally:
            if not ending:
                response.release()

    def _end_later(self, response: aiohttp.ClientResponse) -> bool:
        """Leaves an answered event stream that has not ended yet to end on its own, so the answer
        is used at once (the stream's end often comes in a segment of its own, a wake-up of the
        loop and of the waiting task on the response's critical path). Its connection goes back
        to the pool when the end arrives (aiohttp releases a response's connection at its
        payload's end, read or not); a stream not ended within ``_GRACE`` seconds (a server that
        keeps it open) is closed, as is every one still open when the session closes. What comes
        after the answer is not read: it waits in the response's buffer, which stops reading from
        the socket past its high-water mark. Whether it was left (else it is to be released)."""
        content = response.content
        if content.is_eof():
            return False  # ended with the answer: its connection is released already
        timer = asyncio.get_running_loop().call_later(_GRACE, self._ended, response)
        self._ending[response] = timer
        content.on_eof(functools.partial(self._ended, response))
        return True

    def _ended(self, response: aiohttp.ClientResponse) -> None:
        """A left stream ended (its connection released), or its grace is over (closed)."""
        timer = self._ending.pop(response, None)
        if timer is not None:
            timer.cancel()
            response.close()  # no-op when the end came: released already

    async def _stream(self, response: aiohttp.ClientResponse, wanted: int) -> dict[str, Any]:
        """The answer carried by an SSE stream. A stream that ends first, after events with ids,
        is resumed (GET with ``Last-Event-ID``, after the server's ``retry``), as the spec lets a
        server close a stream and the SDK's client does; at most ``_RESUMES`` times."""
        events = _Events(response.content, self.max_body)
        for attempt in range(_RESUMES + 1):
            if attempt:
                await asyncio.sleep(min(events.retry, 5.0))
                response = await self._resume((events.last_id or b"").decode(errors="replace"))
                events.resumed(response.content)
            try:
                while (data := await events.next()) is not None:
                    found = await self._handle(_parse(data), wanted)
                    if found is not None:
                        if attempt:  # a resumed stream (rare): read to its end here
                            await _drain(response.content, self.max_body)
                        return found
            finally:
                if attempt:
                    response.release()
            if events.last_id is None:
                break
        raise InvalidAnswer("the server's event stream ended without an answer")

    async def _resume(self, last_id: str) -> aiohttp.ClientResponse:
        self._permit(self.url)
        headers = {**self._headers_now(), "Accept": _SSE, "Last-Event-ID": last_id}
        response = await self.http.get(self.url, headers=headers, allow_redirects=False, proxy=self.proxy)
        kind = response.headers.get("Content-Type", "").lower()
        if response.status != 200 or not kind.startswith(_SSE):
            response.release()
            if response.status == 404:
                raise SessionGone()
            raise HttpStatus(response.status, "the event stream could not be resumed")
        return response

    async def _read_all(self, response: aiohttp.ClientResponse) -> bytes:
        if response.content_length is not None and response.content_length > self.max_body:
            raise TooLarge(self.max_body)
        body = bytearray()
        while chunk := await response.content.readany():
            body += chunk
            if len(body) > self.max_body:
                raise TooLarge(self.max_body)
        return bytes(body)

    def _answer(self, message: Any, wanted: int) -> dict[str, Any]:
        for one in message if isinstance(message, list) else [message]:
            if isinstance(one, dict) and one.get("id") == wanted and "method" not in one:
                return _result(one)
        raise InvalidAnswer("the answer does not answer the request")

    async def _handle(self, message: Any, wanted: int) -> dict[str, Any] | None:
        """One message of a stream: the result if it answers ``wanted``, else ``None`` once a
        request of the server's has been answered (notifications are ignored)."""
        if not isinstance(message, dict):
            raise InvalidAnswer("a stream event is not a JSON-RPC message")
        if "method" not in message:
            if message.get("id") == wanted:
                return _result(message)
            return None  # an answer to nothing this session waits for
        if "id" not in message:
            return None  # a notification: progress, logging, list changed
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        if message["method"] == "ping":
            reply["result"] = {}
        else:
            reply["error"] = {"code": _METHOD_NOT_FOUND, "message": "Method not found"}
        await self._exchange(reply, None)
        return None


def _proxy(url: URL) -> URL | None:
    """The proxy the environment names for ``url`` (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``, ``NO_PROXY``, as for the upstreams); never for loopback. Read once per session."""
    chosen = proxy_for(environment().proxies, url.scheme, url.host or "", url.port)
    return URL(chosen) if chosen is not None else None


def _is_tool(tool: Any) -> bool:
    return (
        isinstance(tool, dict)
        and isinstance(tool.get("name"), str)
        and isinstance(tool.get("inputSchema"), dict)
    )


def _parse(data: bytes) -> Any:
    try:
        return _decode(data)
    except msgspec.DecodeError:
        raise InvalidAnswer(f"the answer is not JSON: {bytes(data[:80])!r}", -32700) from None


def _result(message: dict[str, Any]) -> dict[str, Any]:
    error = message.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        text = error.get("message")
        raise RpcError(
            code if isinstance(code, int) else -32603, text if isinstance(text, str) else json.dumps(error)
        )
    result = message.get("result")
    if not isinstance(result, dict):
        raise InvalidAnswer("the answer holds neither a result object nor an error")
    return result


def _within_origin(sent: URL, response: aiohttp.ClientResponse) -> URL | None:
    """Where a 307/308 points, if it stays in the origin of ``sent`` and brings no credentials."""
    location = response.headers.get("Location")
    if response.status not in _REDIRECTS or not location:
        return None
    target = sent.join(URL(location))
    if (target.scheme, target.host, target.port) != (sent.scheme, sent.host, sent.port):
        return None
    if target.user is not None and target.user != sent.user:
        return None
    return target


class _Events:
    """The ``data`` of each ``message`` event of an SSE stream (the WHATWG rules this transport
    uses: fields per line, an event ends at a blank line, ``data`` lines joined with LF). Read
    with ``readany``: a line may be longer than aiohttp's ``readline`` allows (a tool's output)."""

    def __init__(self, content: aiohttp.StreamReader, limit: int) -> None:
        self.content, self.limit = content, limit  # ``content``: the stream being read now
        self.buffer = bytearray()
        self.scanned = 0
        self.size = 0
        self.ready: list[bytes] = []  # events parsed, not yet taken
        self.data: list[bytes] = []
        self.name = b""
        self.last_id: bytes | None = None  # the last event id seen (to resume from)
        self.retry = 0.0  # seconds the server asks a client to wait before resuming

    def resumed(self, content: aiohttp.StreamReader) -> None:
        """Reads ``content`` from now on: a new stream (what was left unfinished is dropped)."""
        self.content = content
        self.buffer.clear()
        self.scanned = 0
        self.data, self.name = [], b""

    async def next(self) -> bytes | None:
        """The next event's data; ``None`` at the stream's end."""
        while not self.ready:
            chunk = await self.content.readany()
            if not chunk:
                return None
            self.size += len(chunk)
            if self.size > self.limit:
                raise TooLarge(self.limit)
            self.buffer += chunk
            self._split()
        return self.ready.pop(0)

    def _split(self) -> None:
        buffer, start = self.buffer, 0
        while (end := buffer.find(b"\n", max(start, self.scanned))) >= 0:
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if not line:
                joined = b"\n".join(self.data)
                if joined and self.name in (b"", b"message"):  # no data: a priming event (its id only)
                    self.ready.append(joined)
                self.data, self.name = [], b""
                continue
            field, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if field == b"data":
                self.data.append(value)
            elif field == b"event":
                self.name = value
            elif field == b"id" and b"\0" not in value:
                self.last_id = value
            elif field == b"retry" and value.isdigit():
                self.retry = int(value) / 1000
        del buffer[:start]
        self.scanned = len(buffer)  # no line end in there: the next search starts after it


async def _drain(content: aiohttp.StreamReader, limit: int) -> None:
    """Reads what is left of an answered stream for ``_GRACE`` seconds at most: a stream read to
    its end leaves its connection open for the next request (else it is closed, and the next
    request pays a new one). A server that keeps the stream open is not waited for longer."""
    if content.at_eof():
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_GRACE):
            while (chunk := await content.readany()) and (limit := limit - len(chunk)) > 0:
                pass

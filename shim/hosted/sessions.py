"""Open MCP sessions kept between operations, so a hosted call does not pay for a new one.

Opening a session is most of an MCP operation's cost: TCP connections, ``initialize`` and its
notification, and the DELETE that closes it — for a ``tools/list`` or ``tools/call`` that costs
less (bench/README.md, issue 18). A response with one call made two.

A session is kept, idle, for ``IDLE`` seconds after use and taken again by the next operation
with the same **key**: the server's label and URL, every header sent (a client's own
``headers``/``authorization`` included: a session never carries one client's credentials for
another), whether it is a registered server, the allow list its ``Guard`` checks and the
bounds its client was built with. One operation at a time per session (more at once open
more sessions); at most ``PER_KEY`` idle sessions per key. A session that failed, timed out, or
whose operation was cancelled (a client that hung up) is closed, never reused: closing it ends
the session on the server (DELETE), which stops a running call, as before. The secrets in a key
stay in this process's memory (never logged or stored) until the session closes.

Streamable HTTP is spoken by the shim's own client (``streamable.py``). A server that refuses
it (an HTTP 4xx or a JSON-RPC error answering ``initialize``, as an SSE-only server built with an
older SDK does) or whose URL ends in ``/sse`` is spoken to over the legacy HTTP+SSE transport
with the ``mcp`` SDK, imported only then (``_SdkClient``: the same operations, the same plain
results). Each session lives in a task of its own (``_Session.hold``), which opens it, waits for
``close`` and closes it: the SDK's transports are anyio task groups, entered and left in one
task, and a DELETE needs a task to run in once the operation that failed is gone. ``close_all``
ends them at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import httpx

from shim.hosted.servers import Guard, HostedConfig, McpServer
from shim.hosted.streamable import HttpStatus, RpcError, SessionGone, StreamableClient, tls

__all__ = ["IDLE", "PER_KEY", "Client", "Closed", "close_all", "first_http_status", "has", "take"]

IDLE = 30.0  # seconds an unused session stays open
PER_KEY = 4  # idle sessions kept per key

Key = tuple[Any, ...]


class Client(Protocol):
    """What an operation asks of an open session (results as plain JSON objects)."""

    async def list_tools(self, cursor: str | None = None) -> dict[str, Any]: ...

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]: ...


class Closed(RpcError):
    """The SDK's session lost its transport ("Connection closed"): its holder knows why."""


def has(exc: BaseException | None, kind: type[BaseException], depth: int = 0) -> bool:
    """``kind`` anywhere in ``exc``: itself, inside its exception groups, or in its causes."""
    if exc is None or depth > 8:
        return False
    if isinstance(exc, kind):
        return True
    if isinstance(exc, BaseExceptionGroup) and any(has(e, kind, depth + 1) for e in exc.exceptions):
        return True
    return has(exc.__cause__ or exc.__context__, kind, depth + 1)


def first_http_status(exc: BaseException) -> int | None:
    """The HTTP status anywhere in ``exc``: ``HttpStatus`` (the own client) or an
    ``httpx.HTTPStatusError`` (the SDK raises them inside task groups, so they arrive wrapped in
    exception groups)."""
    if isinstance(exc, HttpStatus):
        return exc.status
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_http_status(inner)
            if found is not None:
                return found
    cause = exc.__cause__ or exc.__context__
    return first_http_status(cause) if cause is not None and cause is not exc else None


def max_body(config: HostedConfig) -> int:
    """The largest answer read: a tool's output, JSON-escaped, may come twice (text and structured)."""
    return 4 * config.max_output_bytes + (1 << 20)


def _client(server: McpServer, guard: Guard, config: HostedConfig) -> httpx.AsyncClient:
    """The SDK's HTTP client (SSE fallback)."""
    return httpx.AsyncClient(
        verify=tls(),
        headers=dict(server.headers),
        # Reads may wait a little longer than a call: the call's own timeout speaks first.
        timeout=httpx.Timeout(config.call_timeout + 5, connect=config.connect_timeout),
        follow_redirects=False,  # the SDK follows within the origin itself, through the guard
        event_hooks={"request": [guard]},
    )


def key_of(server: McpServer, config: HostedConfig) -> Key:
    return (
        server.label,
        server.url,
        tuple(sorted(server.headers.items())),
        server.registered,
        config.allow,
        config.connect_timeout,
        config.call_timeout,
        config.max_output_bytes,
    )


class _SdkClient:
    """The SDK's ``ClientSession`` (SSE transport) behind ``Client``: plain results, its errors as
    the own client's."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def list_tools(self, cursor: str | None = None) -> dict[str, Any]:
        page = await self._do(self.session.list_tools(cursor) if cursor else self.session.list_tools())
        return page

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await self._do(self.session.call_tool(name, arguments))

    async def _do(self, pending: Any) -> dict[str, Any]:
        from mcp.shared.exceptions import McpError
        from mcp.types import CONNECTION_CLOSED

        try:
            result = await pending
        except McpError as exc:
            if exc.error.code == SessionGone().code:
                raise SessionGone() from None
            kind = Closed if exc.error.code == CONNECTION_CLOSED else RpcError
            raise kind(exc.error.code, exc.error.message) from None
        dumped: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dumped


class _Session:
    """One open session, held by its own task until ``close``."""

    def __init__(self, pool: _Pool, key: Key, server: McpServer, config: HostedConfig) -> None:
        self.pool, self.key = pool, key
        self.loop = asyncio.get_running_loop()
        self.guard = Guard(server, config.allow)
        self.ready: asyncio.Future[Client] = self.loop.create_future()
        self.ready.add_done_callback(_retrieved)
        self.closing = asyncio.Event()
        self.failure: BaseException | None = None  # what ended the holder, if not ``close``
        self.idle_since = 0.0
        self.session_id: Callable[[], str | None] = lambda: None  # the server's id (streamable HTTP)
        self.task = asyncio.create_task(self.hold(server, config), name=f"mcp session {server.label}")

    @property
    def usable(self) -> bool:
        return not self.closing.is_set() and not self.task.done() and not self.loop.is_closed()

    def close(self) -> None:
        self.closing.set()

    async def opened(self) -> Client:
        """The initialised session; raises what opening it raised."""
        try:
            return await asyncio.shield(self.ready)
        except BaseException:
            self.close()  # cancelled while it opened, or it failed: never kept
            raise

    def unended(self) -> bool:
        """Whether the last answer's event stream of this open session has not ended yet."""
        return bool(getattr(self.ready.result(), "unended", False))

    def give_back(self) -> None:
        """The operation is over and went well: kept for the next one (or closed)."""
        self.pool.give_back(self)

    async def hold(self, server: McpServer, config: HostedConfig) -> None:
        try:
            if httpx.URL(server.url).path.rstrip("/").endswith("/sse"):
                await self._serve_sse(server, config)
                return
            try:
                await self._serve(server, config)
            except Exception as exc:
                # Refused before a session opened (405, 404, an error answer): an SSE-only server.
                status = first_http_status(exc)
                refused = isinstance(exc, RpcError) or (status is not None and 400 <= status < 500)
                if self.ready.done() or self.guard.refused is not None or not refused:
                    raise
                await self._serve_sse(server, config)
        except BaseException as exc:  # kept for the operation that waits (or none): never re-raised
            self.failure = exc
            if not self.ready.done():
                self.ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError("closed"))
        finally:
            self.closing.set()

    async def _serve(self, server: McpServer, config: HostedConfig) -> None:
        """Streamable HTTP, the shim's own client."""
        client = StreamableClient(
            server.url,
            server.headers,
            self.guard,
            connect_timeout=config.connect_timeout,
            max_body=max_body(config),
        )
        try:
            async with asyncio.timeout(config.connect_timeout):
                await client.initialize()
            self.session_id = lambda: client.session_id
            self.ready.set_result(client)
            await self.closing.wait()
        finally:
            await client.aclose(config.connect_timeout)  # DELETE: a call still running stops

    async def _serve_sse(self, server: McpServer, config: HostedConfig) -> None:
        """The legacy HTTP+SSE transport, with the SDK (imported here, on first use)."""
        from shim.hosted.tool_output import checked_session

        async with (
            self._sse(server, config) as (read, write),
            checked_session(read, write) as session,
        ):
            async with asyncio.timeout(config.connect_timeout):
                await session.initialize()
            self.ready.set_result(_SdkClient(session))
            await self.closing.wait()

    @contextlib.asynccontextmanager
    async def _sse(self, server: McpServer, config: HostedConfig) -> AsyncIterator[tuple[Any, Any]]:
        from mcp.client.sse import sse_client

        def factory(
            headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None, auth: Any = None
        ) -> httpx.AsyncClient:
            return _client(server, self.guard, config)

        async with sse_client(
            server.url,
            timeout=config.connect_timeout,
            sse_read_timeout=config.call_timeout,
            httpx_client_factory=factory,
        ) as (read, write):
            yield read, write

    async def ended(self, within: float) -> BaseException | None:
        """Closes the session; its holder's failure once it ended (``None`` if it ended cleanly,
        or took longer than ``within`` seconds)."""
        self.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await asyncio.shield(self.task)
        return self.failure


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # no "exception never retrieved" for a session nobody waited for


class _Pool:
    """Idle sessions by key (sessions of a closed event loop are dropped as found)."""

    def __init__(self) -> None:
        self.idle: dict[Key, list[_Session]] = {}
        self.open: set[_Session] = set()
        self.sweeps: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}  # one pending per loop

    def take(self, key: Key, server: McpServer, config: HostedConfig) -> tuple[_Session, bool]:
        """A session for ``key`` and whether it was used before. Only this event loop's sessions
        are touched (another loop's, in another thread, are its own business)."""
        loop = asyncio.get_running_loop()
        self.sweep()
        idle = self.idle.get(key, [])
        for i in range(len(idle) - 1, -1, -1):  # the most recently used first
            session = idle[i]
            if session.loop is loop and session.usable:
                del idle[i]
                if not idle:
                    del self.idle[key]  # no empty entries: a key may hold a client's credentials
                return session, True
        return self.fresh(key, server, config)

    def fresh(self, key: Key, server: McpServer, config: HostedConfig) -> tuple[_Session, bool]:
        session = _Session(self, key, server, config)
        self.open.add(session)
        session.task.add_done_callback(lambda _: self.open.discard(session))
        return session, False

    def give_back(self, session: _Session) -> None:
        idle = self.idle.get(session.key, [])
        if not session.usable or len(idle) >= PER_KEY:
            session.close()
            return
        session.idle_since = session.loop.time()
        self.idle[session.key] = [*idle, session]
        if session.loop not in self.sweeps:  # else the pending sweep comes first, and re-arms
            self._arm(session.loop, session.idle_since)

    def _arm(self, loop: asyncio.AbstractEventLoop, since: float) -> None:
        """A sweep ``IDLE + 0.5`` seconds after ``since`` (one timer per loop, not one per
        operation given back: at a hundred responses a second that was thousands pending)."""
        for gone in [other for other in self.sweeps if other.is_closed()]:
            del self.sweeps[gone]
        self.sweeps[loop] = loop.call_at(since + IDLE + 0.5, self._swept, loop)

    def _swept(self, loop: asyncio.AbstractEventLoop) -> None:
        del self.sweeps[loop]
        self.sweep()
        left = [s.idle_since for idle in self.idle.values() for s in idle if s.loop is loop]
        if left:
            self._arm(loop, min(left))

    def sweep(self) -> None:
        """Closes this loop's sessions idle longer than ``IDLE``; forgets unusable ones and those
        of closed loops."""
        loop = asyncio.get_running_loop()
        for key, idle in list(self.idle.items()):
            keep = []
            for session in idle:
                if session.loop.is_closed():
                    continue
                if session.loop is loop:
                    if not session.usable:
                        continue
                    if loop.time() - session.idle_since >= IDLE:
                        session.close()
                        continue
                keep.append(session)
            if keep:
                self.idle[key] = keep
            else:
                del self.idle[key]


_POOL = _Pool()


def take(server: McpServer, config: HostedConfig, *, fresh: bool = False) -> tuple[_Session, bool]:
    """A session to ``server`` (a kept one unless ``fresh``) and whether it was used before. The
    operation awaits ``opened()``, then hands it back with ``give_back()`` or, when anything went
    wrong, closes it (``close()``, or ``ended()`` for what its holder saw)."""
    key = key_of(server, config)
    return _POOL.fresh(key, server, config) if fresh else _POOL.take(key, server, config)


async def close_all(within: float = 5.0) -> None:
    """Closes every session of the running loop (shutdown), waiting ``within`` seconds at most."""
    loop = asyncio.get_running_loop()
    mine = [s for s in _POOL.open if s.loop is loop]
    for session in mine:
        session.close()
    for key in list(_POOL.idle):
        left = [s for s in _POOL.idle[key] if s.loop is not loop]
        if left:
            _POOL.idle[key] = left
        else:
            del _POOL.idle[key]
    if mine:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await asyncio.gather(*(asyncio.shield(s.task) for s in mine), return_exceptions=True)

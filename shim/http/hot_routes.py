"""The turn endpoints (``POST /v1/responses``, ``/v1/chat/completions``, ``/v1/responses/compact``)
called without Litestar's per-request machinery.

Per request Litestar routes the path, builds a ``Request`` (its ``Headers`` a multidict of every
header), reads the body through an async generator, models the handler's signature, then turns
the returned ``Response`` into an ``ASGIResponse`` (headers re-encoded one by one): ~45 µs of the
shim's ~0.5 ms of CPU per request (bench/README.md, issue 18). A turn handler needs none of it:
it reads the whole body (the body guard already read it), two headers and the ``receive``
channel, and answers bytes.

``HotRoutes`` sits where Litestar's router does, inside Litestar's exception middleware (so an
error still becomes the same envelope, through the same handlers, as before). For an exact
``POST`` path of a hot route it does what the router and ``HTTPRoute.handle`` would (the host
check, the scope keys the rest of the app reads, the body size checks of ``Request.body``) and
calls the handler's core with a ``Call``; a plain JSON answer is sent as ``ASGIResponse`` would
send it, a ``Stream`` of bytes as ``ASGIStreamingResponse`` would (``_send_stream``: in the
calling task, without its anyio task group), anything else through the route handler's own
``to_response``.
Everything else — other methods and paths, a ``root_path``, a bad ``host`` header — goes to
Litestar's router untouched, and the Litestar handlers stay registered (the OpenAPI document,
405s, trailing slashes) and run the same cores. ``tests/server/test_hot_routes.py`` holds the two
paths to the same ASGI messages, byte for byte.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

from litestar import Litestar, Request, Response
from litestar._asgi.utils import is_valid_host
from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream
from litestar.routes import HTTPRoute
from litestar.utils.scope.state import ScopeState

from shim.http.corked import EXTENSION
from shim.http.disconnect import LISTEN, Listen, Watch
from shim.http.guards import ASGIApp, Receive, Scope, Send
from shim.http.observability import Observed
from shim.http.state import AppState

__all__ = [
    "Call",
    "Closing",
    "HotRoutes",
    "call_of",
    "check_announced",
    "enter",
    "handled_by_litestar",
    "install",
]


class Call:
    """What a turn handler reads of its request."""

    __slots__ = ("body", "headers", "listen", "receive", "state")

    def __init__(
        self,
        state: AppState,
        body: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        receive: Receive,
        listen: Listen | None = None,
    ):
        self.state = state
        self.body = body
        self.headers = headers
        self.receive = receive  # after the body: silent until ``http.disconnect``
        self.listen = listen  # the server's disconnect callback, where it offers one (``LISTEN``)

    def header(self, name: bytes) -> str | None:
        """The first value of header ``name`` (lower case), as ``request.headers.get`` reads it."""
        for key, value in self.headers:
            if key == name or key.lower() == name:
                return bytes(value).decode("latin-1")
        return None


Core = Callable[[Call], Awaitable[Response[Any]]]


async def call_of(request: Request[Any, Any, Any], state: AppState) -> Call:
    """The ``Call`` of a request Litestar routed (a path the hot routes leave to it)."""
    body = await request.body()
    return Call(state, body, request.scope["headers"], cast(Receive, request.receive), _listen(request.scope))


def _listen(scope: Any) -> Listen | None:
    extensions = scope.get("extensions")
    return extensions.get(LISTEN) if extensions else None


class _Hot:
    """One hot route: its Litestar handler (for the scope, the limits and streamed answers) and
    the core both paths run."""

    def __init__(self, handler: HTTPRouteHandler, core: Core, path: str) -> None:
        self.handler = handler
        self.core = core
        self.path = path
        self.exception_handlers = handler.resolve_exception_handlers()
        self.max_body = handler.resolve_request_max_body_size() or math.inf
        self.status = handler.status_code


def _plain(handler: HTTPRouteHandler) -> bool:
    """Whether Litestar would do nothing for this handler beyond routing, the request and the
    response: no guards, hooks, dependencies, middleware, cache, DTOs, response headers or
    cookies (any of them added later sends its requests back through Litestar)."""
    layers = handler.ownership_layers
    return not (
        handler.resolve_guards()
        or handler.resolve_dependencies()
        or handler.resolve_middleware()
        or handler.resolve_before_request()
        or handler.resolve_after_response()
        or any(layer.after_request for layer in layers)
        or handler.cache
        or handler.resolve_data_dto()
        or handler.resolve_return_dto()
        or handler.resolve_response_headers()
        or handler.resolve_response_cookies()
        or handler.background is not None
        or handler.resolve_request_class() is not Request
    )


class HotRoutes:
    def __init__(self, app: ASGIApp, state: AppState, routes: Mapping[str, _Hot]) -> None:
        self.app = app  # Litestar's router
        self.state = state
        self.routes = dict(routes)

    def route(self, scope: Scope) -> _Hot | None:
        """The hot route of this request, or ``None``: Litestar's router is for it."""
        hot = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if hot is None or scope.get("method") != "POST" or scope.get("root_path") or not _host_ok(scope):
            return None
        return hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.route(scope)
        if hot is None:
            await self.app(scope, receive, send)
            return
        enter(hot, scope)
        handled_by_litestar(hot, scope)
        body = await _body(scope, receive, hot.max_body)
        await self.answer(hot, body, scope, receive, send)

    async def answer(
        self,
        hot: _Hot,
        body: bytes,
        scope: Scope,
        receive: Receive,
        send: Send,
        observed: Observed | None = None,
    ) -> None:
        """The core's answer to ``body``, sent (``receive``: after the body, silent until
        ``http.disconnect``); ``observed`` sees each message first (the hot chain's)."""
        listen = _listen(scope)
        response = await hot.core(Call(self.state, body, scope["headers"], receive, listen))
        if _bytes_only(response, hot.status):
            await _send_bytes(response, hot.status, send, scope, observed)
            return
        if observed is not None:
            send = observed.sending(send)
        if _stream_only(response, hot.status):
            await _send_stream(cast(Stream, response), hot.status, receive, send, listen)
            return
        handled_by_litestar(hot, scope)
        asgi: Any = (scope, receive, send)  # Litestar's own ASGI types
        request = Request[Any, Any, Any](*asgi)
        answer = await hot.handler.to_response(app=scope["litestar_app"], data=response, request=request)
        await answer(*asgi)


def enter(hot: _Hot, scope: Scope) -> None:
    """What the router sets in the scope (asgi_router.py): the observability reads
    ``path_template``."""
    scope.setdefault("path_params", {})
    scope["route_handler"] = hot.handler
    scope["path_template"] = hot.path


def handled_by_litestar(hot: _Hot, scope: Scope) -> None:
    """The rest of what the router sets, for Litestar's own code (its exception middleware, its
    ``Request`` and responses): the route's exception handlers in Litestar's scope state. A JSON
    answer or a stream sent here never reads it."""
    ScopeState.from_scope(cast(Any, scope)).exception_handlers = hot.exception_handlers


def _host_ok(scope: Scope) -> bool:
    """Litestar's router refuses a ``host`` header it finds invalid (a 400): left to it."""
    for name, value in scope["headers"]:
        if name == b"host":
            return is_valid_host(value)
    return True


def check_announced(scope: Scope, max_body: float) -> None:
    """``Request.body``'s checks of the ``content-length`` header: a number, within the limit."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                announced = int(value)
            except ValueError:
                raise ClientException(f"Invalid content-length: {value.decode('latin-1')!r}") from None
            if announced > max_body:
                raise RequestEntityTooLarge
            return


async def _body(scope: Scope, receive: Receive, max_body: float) -> bytes:
    """The whole body, with ``Request.body``'s checks and errors (the body guard, in front, has
    usually read and replayed it as one message)."""
    check_announced(scope, max_body)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > max_body:
                    raise RequestEntityTooLarge
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if message["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _body_allowed(response: Response[Any], status: int) -> bool:
    """No cookies nor background task, and a status that allows a body."""
    status_code = response.status_code or status
    return (
        not response.cookies
        and response.background is None
        and status_code >= 200
        and status_code not in (204, 304)
    )


def _bytes_only(response: Response[Any], status: int) -> bool:
    """A plain ``Response`` of bytes with a body (no cookies, no background task)."""
    return (
        type(response) is Response and isinstance(response.content, bytes) and _body_allowed(response, status)
    )


async def _send_bytes(
    response: Response[Any], status: int, send: Send, scope: Scope, observed: Observed | None = None
) -> None:
    """``ASGIResponse``'s messages for a ``Response`` of bytes: its headers in order (names in
    lower case), then ``content-type`` and ``content-length`` unless it set them. Under
    ``shim serve`` the head and the body then leave in one write (``http/corked.py``).
    ``observed`` sees each message before it is sent."""
    status_code = response.status_code or status
    body: bytes = response.content
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    names = {name for name, _ in headers}
    if b"content-type" not in names:
        media_type = str(response.media_type or "application/json")
        if media_type.startswith("text/"):
            media_type = f"{media_type}; charset={response.encoding}"
        headers.append((b"content-type", media_type.encode("latin-1")))
    if b"content-length" not in names:
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
    extensions = scope.get("extensions")
    hold = extensions.get(EXTENSION) if extensions else None
    if hold is not None:  # the body follows the start at once: one write for both
        hold()
    start = {"type": "http.response.start", "status": status_code, "headers": headers}
    end = {"type": "http.response.body", "body": body, "more_body": False}
    if observed is not None:
        observed.saw(start)
        await send(start)
        observed.saw(end)
        await send(end)
        return
    await send(start)
    await send(end)


def _stream_only(response: Response[Any], status: int) -> bool:
    """A ``Stream`` over an async iterator, with no cookies nor background task, whose status
    allows a body."""
    return (
        type(response) is Stream
        and isinstance(response.iterator, AsyncIterator)
        and _body_allowed(response, status)
    )


def _start(response: Response[Any], status: int) -> dict[str, Any]:
    """The ``http.response.start`` of a body of unknown length: the response's headers in order
    (names in lower case), then ``content-type`` unless it set one (``ASGIResponse``'s)."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    if all(name != b"content-type" for name, _ in headers):
        media_type = str(response.media_type or "application/json")
        if media_type.startswith("text/"):
            media_type = f"{media_type}; charset={response.encoding}"
        headers.append((b"content-type", media_type.encode("latin-1")))
    return {"type": "http.response.start", "status": response.status_code or status, "headers": headers}


async def _send_stream(
    response: Stream, status: int, receive: Receive, send: Send, listen: Listen | None = None
) -> None:
    """``ASGIStreamingResponse``'s messages: the start, one body message per chunk, an empty
    last one. Its anyio task group (a task for the chunks, cancel scopes, ~3 KB per open stream)
    becomes the calling task sending the chunks and one watcher task on ``receive``: a client
    that leaves cancels the sending, which then ends quietly, as the task group's cancelled scope
    does. The iterator is closed at once, so the upstream answer is let go of then."""
    iterator = cast(AsyncIterator[bytes | str], response.iterator)
    encoding = response.encoding
    await send(_start(response, status))
    task = asyncio.current_task()
    assert task is not None, "called from a task"
    watch = Watch(task, receive, listen)  # a receive that fails ends the stream too
    closed = False
    try:
        async for chunk in iterator:
            if closed:
                raise RuntimeError("a stream went on after its closing chunk")
            if type(chunk) is Closing:
                # The answer's end: no disconnect to watch for any more (the client that leaves
                # now misses nothing), then the iterator runs to its end (its cleanup).
                closed = True
                watch.stop()
                await send({"type": "http.response.body", "body": chunk, "more_body": False})
                continue
            body = chunk if isinstance(chunk, bytes) else chunk.encode(encoding)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if not closed:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        watch.stop()
        if not watch.answers_nobody():  # cancelled from outside (shutdown): goes on up
            raise
    finally:
        watch.stop()
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


class Closing(bytes):
    """A stream's last chunk: ``_send_stream`` sends it with the end of the body (one message
    and one socket write less per stream); to anyone else it is bytes like the others."""

    __slots__ = ()


def install(app: Litestar, state: AppState, cores: Mapping[str, Core]) -> None:
    """Put ``HotRoutes`` between Litestar's exception middleware and its router, for each
    ``POST`` path in ``cores`` whose handler Litestar would do nothing more for (``_plain``)."""
    outer = app.asgi_handler
    if getattr(outer, "app", None) is not app.asgi_router:  # CORS, a plugin's middleware: not here
        return
    routes: dict[str, _Hot] = {}
    for route in app.routes:
        core = cores.get(route.path)
        if core is None or not isinstance(route, HTTPRoute) or "POST" not in route.route_handler_map:
            continue
        handler, _ = route.route_handler_map["POST"]
        if _plain(handler):
            routes[route.path] = _Hot(handler, core, route.path)
    if routes:
        outer.app = HotRoutes(app.asgi_router, state, routes)  # type: ignore[attr-defined]

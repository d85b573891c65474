"""The turn endpoints' whole ASGI chain as one layer.

Every request passes the observation (``observability.Observe``: request id, access line,
metrics, span), the key gate (``auth.ClientAuth``), the body guard (``guards.BodyGuard``),
Litestar's exception middleware and then the hot routes (``hot_routes.HotRoutes``): five
coroutines around the turn, two wrappers around each message sent, the body read twice (the
guard replays it), and every suspension of the turn passing through all of them. For a request
the hot routes take (an exact ``POST`` path of a turn endpoint, no ``root_path``, a valid host),
``HotChain`` does the same steps itself, in the same order, with the same code: observation
started (``Observed``), the key checked (``check_client``), the body read and checked
(``read_body``), then the route entered and answered (``HotRoutes.answer``); an exception is
handed to a Litestar exception middleware as the one in the chain would have caught it. A
refused key or body is answered before the route is entered (its access line says
``unmatched``, as before). Everything else goes through the whole chain unchanged, and so does
every request when per-key rate limits are on (``RateLimit`` sits inside the body guard).
``tests/server/test_hot_chain.py`` holds both ways to the same messages, access lines and metrics.
"""

from __future__ import annotations

from typing import Any, cast

from litestar import Litestar
from litestar.exceptions import LitestarException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.middleware._internal.exceptions import ExceptionHandlerMiddleware

from shim.errors import AuthenticationError, ShimError
from shim.http.auth import ClientAuth, check_client
from shim.http.guards import ASGIApp, BodyGuard, Receive, Scope, Send, read_body, send_error
from shim.http.hot_routes import HotRoutes, check_announced, enter, handled_by_litestar
from shim.http.observability import Observe, Observed
from shim.http.state import AppState

__all__ = ["HotChain", "install"]


class _Raise:
    """An ASGI app raising ``error``: handed to an exception middleware, it makes that
    middleware handle ``error`` as if it had caught it from the app it wraps."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise self.error


class HotChain:
    def __init__(self, chain: ASGIApp, hot: HotRoutes, state: AppState) -> None:
        self.app = chain  # the whole chain, for every other request
        self.hot = hot
        self.metrics = state.metrics
        self.router = state.turns.router
        server = state.settings.server
        self.limits = server.limits
        self.max_body_bytes = server.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot.route(scope)
        if hot is None:
            await self.app(scope, receive, send)
            return
        observed = Observed(scope, self.metrics)
        try:
            try:
                check_client(self.router, scope)  # the key first: no body read for a 401
            except AuthenticationError as exc:
                await send_error(observed.sending(send), exc)
                return
            body = await read_body(receive, self.limits, self.max_body_bytes)
            if body is None:
                return
            if isinstance(body, ShimError):
                await send_error(observed.sending(send), body)
                return
            enter(hot, scope)
            try:
                check_announced(scope, hot.max_body)
                if len(body) > hot.max_body:
                    raise RequestEntityTooLarge
                await self.hot.answer(hot, body, scope, receive, send, observed)
            except Exception as exc:
                if observed.answering:
                    raise LitestarException("Exception caught after response started") from exc
                handled_by_litestar(hot, scope)
                raising: Any = _Raise(exc)  # (Litestar's own ASGI types)
                handling: Any = ExceptionHandlerMiddleware(raising, debug=None)
                await handling(scope, receive, observed.sending(send))
        finally:
            observed.end(scope)


def install(app: Litestar, state: AppState) -> None:
    """``HotChain`` in front of the chain ``observability.install`` built, when that chain is
    exactly observation → key gate → body guard → Litestar's exception middleware → hot routes
    (no rate limits, no other middleware between them): the steps ``HotChain`` repeats."""
    chain = app.asgi_handler
    if not isinstance(chain, Observe):
        return
    gate = chain.app
    guard = getattr(gate, "app", None)
    errors = getattr(guard, "app", None)
    hot = getattr(errors, "app", None)
    if (
        isinstance(gate, ClientAuth)
        and isinstance(guard, BodyGuard)
        and isinstance(errors, ExceptionHandlerMiddleware)
        and isinstance(hot, HotRoutes)
    ):
        app.asgi_handler = cast(Any, HotChain(chain, hot, state))

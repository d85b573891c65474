"""The composition root: ``create_app`` builds every part once (router, upstream client, store,
``TurnContext``, background runner, metrics) into one typed ``AppState``, registers the handlers
and renders errors in the OpenAI envelope. Handlers live beside it: ``responses.py``,
``chat.py``, ``websocket.py``, ``retrieval.py``, ``conversations.py``, ``models.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException

from shim import tracing
from shim.conversation.keyring import previous_secrets, server_secret
from shim.conversation.prompts import load_prompts
from shim.conversation.reasoning_memory import ReasoningMemory
from shim.errors import InvalidRequest, ShimError
from shim.fixtures.recorder import build_recorder
from shim.hosted.servers import HostedConfig
from shim.http.chat import answer_chat, create_chat_completion
from shim.http.conversations import conversation_handlers
from shim.http.hot_chain import install as install_hot_chain
from shim.http.hot_routes import install as install_hot_routes
from shim.http.inspector import install as install_recording
from shim.http.models import healthz, list_models, retrieve_model
from shim.http.observability import install as install_observability
from shim.http.openapi import openapi_config
from shim.http.ratelimit import RateLimiter
from shim.http.responses import answer_compact, answer_create, compact_response, create_response
from shim.http.retrieval import retrieval_handlers
from shim.http.state import STATE_KEY, AppState, app_state
from shim.http.websocket import responses_websocket
from shim.ids import RandomIds, system_clock
from shim.settings import Settings
from shim.store.backends import open_backend
from shim.store.conversations import ConversationStore
from shim.store.rate_counters import counters_for
from shim.store.repository import ResponseStore
from shim.telemetry import Metrics
from shim.turns.background import BackgroundRunner
from shim.turns.context import TurnContext
from shim.turns.pump import Timing
from shim.upstream.client import UpstreamClient
from shim.upstream.routing import Router

__all__ = ["App", "app_state", "create_app", "error_response"]

App = Litestar  # what ``create_app`` builds, for modules above ``http/`` that may not import Litestar

log = logging.getLogger("shim")
_encoder = msgspec.json.Encoder()


def error_response(exc: ShimError) -> Response[bytes]:
    return Response(
        content=_encoder.encode(exc.envelope()),
        status_code=exc.http_status,
        media_type="application/json",
        headers=exc.headers or None,
    )


def _shim_error_handler(_: Request[Any, Any, Any], exc: ShimError) -> Response[bytes]:
    return error_response(exc)


def _http_error_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    kinds = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    headers = dict(exc.headers or {})
    if "allow" in headers:  # 405 must list the methods; Litestar counts the WebSocket route as one
        headers["allow"] = ", ".join(m for m in headers["allow"].split(", ") if m.isupper())
    message, param = str(exc.detail), None
    problem = exc.extra[0] if isinstance(exc.extra, list) and exc.extra else None
    if isinstance(problem, dict) and "key" in problem:  # a query/path parameter Litestar rejected
        param = str(problem["key"])
        message = f"Invalid `{param}`: {problem.get('message', 'bad value')}."
    # A client's mistake is an ``invalid_request_error``, anything else a ``server_error``.
    kind = InvalidRequest if exc.status_code < 500 else ShimError
    error = kind(
        message,
        param=param,
        code=kinds.get(exc.status_code, "invalid_parameter" if param else "invalid_request"),
        status=exc.status_code,
        headers=headers,
    )
    return error_response(error)


def _crash_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", exc_info=exc)
    return error_response(ShimError("The shim failed to handle this request.", code="internal_error"))


def create_app(settings: Settings, *, upstream: UpstreamClient | None = None) -> Litestar:
    server = settings.server
    client = upstream or UpstreamClient(
        server.timeouts,
        server.retries,
        max_response_bytes=server.max_upstream_response_bytes,
        retry_max_wait=server.retry_max_wait,
        breaker=server.breaker,
    )
    store = (
        ResponseStore(
            open_backend(server.store, max_bytes=server.store_max_bytes), ttl=server.store_ttl or None
        )
        if server.store != "none"
        else None
    )
    ctx = TurnContext(
        router=Router(settings.routes, server.api_keys),
        upstream=client,
        store=store,
        secret=server_secret(server),  # SHIM_SECRET, else the data dir's file (made once)
        previous_secrets=previous_secrets(server),  # SHIM_PREVIOUS_SECRETS: rotation
        policy=server.diagnostics,
        ids=RandomIds(),
        clock=system_clock,
        limits=server.limits,
        timing=Timing(keepalive=server.timeouts.keepalive, idle=server.timeouts.idle),
        memory=ReasoningMemory(store.backend) if store is not None else None,
        conversations=ConversationStore(store.backend, store.ttl) if store is not None else None,
        truncation_retries=server.truncation_retries,
        prompts=load_prompts(server.prompts_dir),  # checked at start-up: a bad file stops it here
        hosted=HostedConfig.from_settings(settings),
    )
    if ctx.hosted.allow or ctx.hosted.servers or ctx.hosted.web_search is not None:
        # Hosted tools configured: the MCP client (and jsonschema, for tools' structured output)
        # loads with the app, not on the first request that uses one; without them it never
        # loads. The mcp SDK loads only for a server on the legacy SSE transport
        # (tests/test_lazy_imports.py).
        importlib.import_module("shim.hosted.mcp_client")
    state = AppState(
        settings=settings,
        turns=ctx,
        background=BackgroundRunner(ctx, lease=server.background_lease),
        metrics=Metrics(),
        recorder=build_recorder(settings, ctx.secret),  # None unless --record DIR or /inspector
        limiter=RateLimiter(
            server.rate_limits, counters_for(store.backend if store is not None else None), ctx.scope
        )
        if server.rate_limits.enabled
        else None,
    )

    traced = tracing.start(server.tracing)  # OTEL_EXPORTER_OTLP_ENDPOINT set: spans (docs/tracing.md)

    async def shutdown() -> None:
        await state.background.aclose()
        await client.aclose()
        if (mcp_sessions := sys.modules.get("shim.hosted.sessions")) is not None:
            await mcp_sessions.close_all()  # kept MCP sessions (loaded with the MCP SDK only)
        if ctx.store is not None:
            await ctx.store.backend.aclose()
        if traced is not None:
            if tracing.active() is traced:
                tracing.use(None)
            await asyncio.to_thread(traced.shutdown)  # the last spans exported (a blocking flush)

    with _pydantic_unseen():  # Litestar's pydantic plugins: not for an app without pydantic models
        app = Litestar(
            route_handlers=[
                create_response,
                create_chat_completion,
                compact_response,
                responses_websocket,
                list_models,
                retrieve_model,
                healthz,
                *retrieval_handlers,
                *conversation_handlers,
            ],
            exception_handlers={
                ShimError: _shim_error_handler,
                HTTPException: _http_error_handler,
                Exception: _crash_handler,
            },
            on_shutdown=[shutdown],
            openapi_config=openapi_config(),
            request_max_body_size=server.max_body_bytes,
            state=State({STATE_KEY: state}),
            debug=False,
        )
    # the turn endpoints without Litestar's per-request work (before the wrappers below)
    install_hot_routes(
        app,
        state,
        {
            "/v1/responses": answer_create,
            "/v1/chat/completions": answer_chat,
            "/v1/responses/compact": answer_compact,
        },
    )
    install_observability(app, state)  # body guard, request ids, logs, /metrics, /readyz
    install_hot_chain(app, state)  # the turn endpoints past the chain's wrappers (same steps)
    install_recording(app, client)  # --record DIR and /inspector (off by default)
    return app


@contextlib.contextmanager
def _pydantic_unseen() -> Iterator[None]:
    """Litestar adds its pydantic plugins whenever pydantic can be imported (~10 MiB a worker).
    The shim has no pydantic models: pydantic is installed for the MCP SDK, which loads only with
    hosted tools (then pydantic is loaded already and this does nothing). While the app is built,
    ``import pydantic`` fails as if it were not installed (tests/test_lazy_imports.py)."""
    if "pydantic" in sys.modules:
        yield
        return
    sys.modules["pydantic"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if "pydantic" in sys.modules and sys.modules["pydantic"] is None:
            del sys.modules["pydantic"]

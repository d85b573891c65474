"""The Litestar application: thin handlers (decode → service → encode) and error rendering.

Bodies are decoded by us, not by Litestar, so every validation error comes out in the OpenAI
envelope with a ``param``; the OpenAPI document is told the real request schemas separately
(``shim.server.openapi``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.response import Stream

from shim.errors import ShimError
from shim.ids import RandomIds, system_clock
from shim.keyring import Keyring
from shim.routing import Router, bearer
from shim.server.background import BackgroundRunner
from shim.server.chat_endpoint import create_chat_completion, install_chat, responses_pass_through
from shim.server.compaction import compact_response
from shim.server.observability import install as install_observability
from shim.server.openapi import ModelList, add_wire_schemas, documented, openapi_config
from shim.server.responses_service import ResponsesService, Turn
from shim.server.retrieval import retrieval_handlers
from shim.server.websocket import responses_websocket
from shim.settings import Settings
from shim.sse import DONE, KEEPALIVE
from shim.store.backends import open_backend
from shim.store.repository import ResponseStore
from shim.upstream import UpstreamClient
from shim.wire import responses as r
from shim.wire.responses_decode import decode_create_response_body

__all__ = ["create_app", "encode_sse"]

log = logging.getLogger("shim")
_encoder = msgspec.json.Encoder()

# Pre-encoded ``event: <type>\ndata: `` prefixes, one per event class.
_PREFIX: dict[type, bytes] = {}


def encode_sse(event: r.StreamingEvent) -> bytes:
    cls = type(event)
    prefix = _PREFIX.get(cls)
    if prefix is None:
        tag = cls.__struct_config__.tag
        prefix = _PREFIX[cls] = b"event: " + str(tag).encode() + b"\ndata: "
    return prefix + _encoder.encode(event) + b"\n\n"


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
    error = ShimError(
        message,
        param=param,
        code=kinds.get(exc.status_code, "invalid_parameter" if param else "invalid_request"),
        status=exc.status_code,
        headers=headers,
    )
    error.type = "invalid_request_error" if exc.status_code < 500 else "server_error"  # type: ignore[misc]
    return error_response(error)


def _crash_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", exc_info=exc)
    return error_response(ShimError("The shim failed to handle this request.", code="internal_error"))


def _headers(turn: Turn) -> dict[str, str]:
    headers = {}
    if turn.diags:
        headers["x-shim-diagnostics"] = turn.diags.header_value()
    return headers


async def _sse(service: ResponsesService, turn: Turn, upstream: Any) -> AsyncIterator[bytes]:
    # One message per upstream chunk, not per event: each message costs a trip down the ASGI
    # send chain and a socket write.
    async for batch in service.event_batches(turn, upstream):
        yield KEEPALIVE if batch is None else b"".join([encode_sse(event) for event in batch])
    yield DONE


@post(
    "/v1/responses",
    status_code=200,
    summary="Create a response",
    tags=["responses"],
    operation_class=documented(
        request=r.CreateResponseBody,
        response=r.ResponseResource,
        stream="Server-sent events when `stream` is true: `event: <type>` and `data: <event JSON>` per "
        "Open Responses streaming event, then `data: [DONE]`.",
    ),
)
async def create_response(request: Request[Any, Any, Any]) -> Response[Any]:
    service: ResponsesService = request.app.state.service
    raw = await request.body()
    body = decode_create_response_body(raw)
    passed = await responses_pass_through(request, raw, body)  # a route whose upstream speaks Responses
    if passed is not None:
        return passed
    turn = await service.prepare(body, bearer(request.headers.get("authorization")))
    if body.background:  # answered `queued` at once; the turn runs as a task (shim.server.background)
        queued = await request.app.state.background.start(turn)
        return Response(
            content=_encoder.encode(queued), media_type="application/json", headers=_headers(turn)
        )
    if body.stream:
        upstream = await service.open_stream(turn)
        return Stream(
            _sse(service, turn, upstream),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **_headers(turn)},
        )
    resource = await service.complete(turn)
    return Response(content=_encoder.encode(resource), media_type="application/json", headers=_headers(turn))


@get(
    "/v1/models",
    summary="List models",
    tags=["models"],
    operation_class=documented(response=ModelList, errors=("401",)),
)
async def list_models(request: Request[Any, Any, Any]) -> Response[bytes]:
    service: ResponsesService = request.app.state.service
    client_key = bearer(request.headers.get("authorization"))
    seen: dict[str, dict[str, Any]] = {}
    for route, resolved in service.router.listing(client_key):  # which key may go where: routing.py
        if resolved is None:
            for name in service.router.configured_models(route):
                seen.setdefault(name, {"id": name, "object": "model", "created": 0, "owned_by": "shim"})
            continue
        try:
            data = msgspec.json.decode(await service.upstream.get_json(resolved, "/models"))
        except ShimError as exc:
            log.info("models: %s: %s", route.upstream, exc.message)
            continue
        for model in data.get("data", []) if isinstance(data, dict) else []:
            if isinstance(model, dict) and isinstance(model.get("id"), str):
                model_id = model["id"] + (f":{route.provider}" if route.provider else "")
                seen.setdefault(model_id, {**model, "id": model_id, "object": "model"})
    return Response(
        content=_encoder.encode({"object": "list", "data": list(seen.values())}),
        media_type="application/json",
    )


@get("/healthz", summary="Liveness", tags=["operations"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app(settings: Settings, *, upstream: UpstreamClient | None = None) -> Litestar:
    server = settings.server
    router = Router(settings.routes, server.api_keys)
    client = upstream or UpstreamClient(
        server.timeouts,
        server.retries,
        max_response_bytes=server.max_upstream_response_bytes,
        retry_max_wait=server.retry_max_wait,
    )
    store = (
        ResponseStore(
            open_backend(server.store, max_bytes=server.store_max_bytes), ttl=server.store_ttl or None
        )
        if server.store != "none"
        else None
    )
    service = ResponsesService(
        router=router,
        upstream=client,
        store=store,
        keyring=Keyring.of(server),  # SHIM_SECRET or the data dir's file, + SHIM_PREVIOUS_SECRETS
        policy=server.diagnostics,
        ids=RandomIds(),
        clock=system_clock,
        keepalive=server.timeouts.keepalive,
        idle=server.timeouts.idle,
    )

    background = BackgroundRunner(service)

    async def shutdown() -> None:
        await background.aclose()
        await client.aclose()
        if store is not None:
            await store.backend.aclose()

    app = Litestar(
        route_handlers=[
            create_response,
            create_chat_completion,
            compact_response,
            responses_websocket,
            list_models,
            healthz,
            *retrieval_handlers,
        ],
        exception_handlers={
            ShimError: _shim_error_handler,
            HTTPException: _http_error_handler,
            Exception: _crash_handler,
        },
        on_shutdown=[shutdown],
        openapi_config=openapi_config(),
        request_max_body_size=server.max_body_bytes,
        debug=False,
    )
    add_wire_schemas(app.openapi_schema)
    app.state.service = service
    install_chat(app, service)
    app.state.background = background
    app.state.settings = settings
    service.limits = server.limits
    install_observability(app, settings)  # body guard, request ids, logs, /metrics, /readyz
    return app

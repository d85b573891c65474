"""Thin handlers for the Chat-facing side and for Responses pass-through.

``POST /v1/chat/completions`` serves every route: a ``chat`` route passes through
(``chat_passthrough``), a ``responses`` route translates (``chat_service``). ``POST
/v1/responses`` on a ``responses`` route passes through too (``responses_pass_through``, called
by the Responses handler before it translates). Errors come out in the OpenAI envelope through
the app's ``ShimError`` handler; mid-stream as a final error chunk / ``error`` event.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, Response, post
from litestar.response import Stream

from shim.errors import InvalidRequest
from shim.limits import check_chat_body
from shim.redaction import redacted_stream
from shim.routing import bearer
from shim.server.chat_passthrough import ChatPassthrough
from shim.server.chat_service import ChatService, ChatTurn, reasoning_mode
from shim.server.reasoning_memory import ReasoningMemory
from shim.server.responses_passthrough import ResponsesPassthrough
from shim.server.responses_service import ResponsesService
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import validation_param

__all__ = ["REASONING_HEADER", "create_chat_completion", "install_chat", "responses_pass_through"]

REASONING_HEADER = "x-shim-reasoning"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def decode_chat_body(raw: bytes) -> c.ChatCompletionRequest:
    try:
        return c.decode_chat_request(raw)
    except msgspec.ValidationError as exc:
        message = str(exc).split(" - at `", 1)[0]
        raise InvalidRequest(
            f"Invalid request: {message}", param=validation_param(exc), code="invalid_value"
        ) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None


@post("/v1/chat/completions", status_code=200, summary="Create a chat completion", tags=["chat"])
async def create_chat_completion(request: Request[Any, Any, Any]) -> Response[Any]:
    service: ChatService = request.app.state.chat_service
    passthrough: ChatPassthrough = request.app.state.chat_passthrough
    raw = await request.body()
    req = decode_chat_body(raw)
    check_chat_body(req, request.app.state.service.limits)  # before anything reaches an upstream
    client_key = bearer(request.headers.get("authorization"))
    resolved = service.router.resolve(req.model, client_key)
    header = request.headers.get(REASONING_HEADER)
    mode = reasoning_mode(header, resolved.route.reasoning)
    if resolved.route.kind == "chat":
        normalize = mode if (header or resolved.route.normalize_chat) else None
        if req.stream:
            upstream = await passthrough.open_stream(raw, req, resolved)
            body = (
                passthrough.raw_chunks(upstream)
                if normalize is None or (req.n or 1) > 1
                else passthrough.normalized_chunks(upstream, req, resolved, normalize)
            )
            # Passed through as the upstream sent it, so an echoed upstream key is cut out here.
            clean = redacted_stream(body, resolved.upstream_key)
            return Stream(clean, media_type="text/event-stream", headers=_SSE_HEADERS)
        content = await passthrough.complete(raw, req, resolved, normalize)
        return Response(content=content, media_type="application/json")
    turn = await service.prepare(req, resolved, client_key, mode)
    if req.stream:
        responses = await service.open_streams(turn)
        return Stream(
            redacted_stream(service.chunks(turn, responses), resolved.upstream_key),
            media_type="text/event-stream",
            headers={**_SSE_HEADERS, **_turn_headers(turn)},
        )
    completion = await service.complete(turn)
    return Response(
        content=c.encode_completion(completion), media_type="application/json", headers=_turn_headers(turn)
    )


def _turn_headers(turn: ChatTurn) -> dict[str, str]:
    headers = dict(turn.headers)
    if turn.diags:
        headers["x-shim-diagnostics"] = turn.diags.header_value()
    return headers


async def responses_pass_through(
    request: Request[Any, Any, Any], raw: bytes, body: r.CreateResponseBody
) -> Response[Any] | None:
    """The answer for a ``responses`` route, or ``None`` when the route speaks Chat (translate)."""
    service: ChatService = request.app.state.chat_service
    passthrough: ResponsesPassthrough = request.app.state.responses_passthrough
    client_key = bearer(request.headers.get("authorization"))
    resolved = service.router.resolve(body.model, client_key)
    if resolved.route.kind != "responses":
        return None
    turn = await passthrough.prepare(raw, body, resolved, client_key)
    if body.stream:
        upstream = await passthrough.open_stream(turn)
        return Stream(
            redacted_stream(passthrough.chunks(turn, upstream), resolved.upstream_key),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )
    return Response(content=await passthrough.complete(turn), media_type="application/json")


def install_chat(app: Litestar, service: ResponsesService) -> None:
    """Put the Chat side's services on ``app.state``, sharing the Responses service's parts."""
    memory = ReasoningMemory(service.store.backend) if service.store is not None else None
    app.state.chat_service = ChatService(
        router=service.router,
        upstream=service.upstream,
        memory=memory,
        keyring=service.keyring,
        policy=service.policy,
        ids=service.ids,
        clock=service.clock,
        keepalive=service.keepalive,
        idle=service.idle,
    )
    app.state.chat_passthrough = ChatPassthrough(
        service.upstream, service.ids, service.clock, service.keepalive, service.idle
    )
    app.state.responses_passthrough = ResponsesPassthrough(service)

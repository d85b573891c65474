"""``POST /v1/chat/completions`` on every route: resolve the route once, then a ``chat`` route
passes through (``turns/chat_passthrough.py``) and a ``responses`` route translates
(``turns/chat_over_responses.py``). Errors come out in the OpenAI envelope through the app's
``ShimError`` handler; mid-stream as a final error chunk.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.response import Stream

from shim.errors import ContextLengthExceeded, InvalidRequest
from shim.http.disconnect import client_left, unless_client_leaves
from shim.http.hot_routes import Call, call_of
from shim.http.responses import SSE_HEADERS, diagnostics_headers, json_response, write_bytes
from shim.http.state import app_state
from shim.translate.chat_writer import ReasoningMode
from shim.turns import chat_over_responses, chat_passthrough
from shim.upstream.routing import bearer
from shim.wire import chat as c
from shim.wire.responses_decode import validation_param

__all__ = ["REASONING_HEADER", "answer_chat", "create_chat_completion", "decode_chat_body", "reasoning_mode"]

REASONING_HEADER = "x-shim-reasoning"
_REASONING_NAME = REASONING_HEADER.encode()
_MODES: dict[str, ReasoningMode] = {
    "reasoning_content": "reasoning_content",
    "reasoning": "reasoning",
    "think_tags": "think_tags",
    "think": "think_tags",
}


def reasoning_mode(header: str | None, default: ReasoningMode) -> ReasoningMode:
    """The ``x-shim-reasoning`` header (``reasoning_content`` | ``reasoning`` | ``think_tags``)."""
    if not header:
        return default
    mode = _MODES.get(header.strip().lower())
    if mode is None:
        raise InvalidRequest(
            f"x-shim-reasoning must be one of reasoning_content, reasoning, think_tags; got {header!r}.",
            param="x-shim-reasoning",
            code="invalid_value",
        )
    return mode


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
    return await answer_chat(await call_of(request, app_state(request.app)))


async def answer_chat(call: Call) -> Response[Any]:
    """``POST /v1/chat/completions`` (also called straight by ``http/hot_routes.py``)."""
    try:
        return await _create(call)
    except ContextLengthExceeded as exc:  # a Chat client sent `messages`, not `input`
        exc.param = "messages"
        raise


async def _create(call: Call) -> Response[Any]:
    ctx = call.state.turns
    raw = call.body
    req = decode_chat_body(raw)
    chat_passthrough.check(ctx, req)  # the limits, before anything reaches an upstream
    client_key = bearer(call.header(b"authorization"))
    resolved = ctx.router.resolve(req.model, client_key)
    header = call.header(_REASONING_NAME)
    mode = reasoning_mode(header, resolved.route.reasoning)
    if resolved.route.kind == "chat":
        normalize = mode if (header or resolved.route.normalize_chat) else None
        diags = ctx.diagnostics()
        if req.stream:
            upstream, resolved = await chat_passthrough.open_stream(ctx, raw, req, resolved, diags)
            batches = chat_passthrough.chunks(ctx, upstream, req, resolved, normalize)
            return Stream(
                write_bytes(batches),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **diagnostics_headers(diags)},
            )
        # A client hanging up closes the upstream request (http/disconnect.py); llama-cpp-python
        # finishes an unstreamed answer even then: a Chat client that may leave should stream.
        content = await unless_client_leaves(
            call.receive, chat_passthrough.complete(ctx, raw, req, resolved, normalize, diags), call.listen
        )
        if content is None:
            return client_left()
        return json_response(content, diagnostics_headers(diags))
    turn = await chat_over_responses.prepare(ctx, req, resolved, client_key, mode)
    # Headers once the upstream answered: a refused continuation drops x-shim-upstream-bytes-saved.
    if req.stream:
        responses = await chat_over_responses.open_streams(ctx, turn)
        return Stream(
            chat_over_responses.chunks(ctx, turn, responses),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **diagnostics_headers(turn.diags, turn.headers)},
        )
    completion = await unless_client_leaves(
        call.receive, chat_over_responses.complete(ctx, turn), call.listen
    )
    if completion is None:
        return client_left()
    return json_response(c.encode_completion(completion), diagnostics_headers(turn.diags, turn.headers))

"""``POST /v1/responses`` and ``POST /v1/responses/compact``: resolve the route once, hand one
turn module its context, frame the answer (JSON, or SSE batches from the pump).

Bodies are decoded by us, not by Litestar, so every validation error comes out in the OpenAI
envelope with a ``param``; the OpenAPI document is told the real request schemas separately
(``shim.http.openapi``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.response import Stream

from shim.core.diagnostics import Diagnostics
from shim.http.disconnect import client_left, unless_client_leaves
from shim.http.hot_routes import Call, Closing, call_of
from shim.http.openapi import documented
from shim.http.state import app_state
from shim.sse import DONE, KEEPALIVE, encode_tagged
from shim.turns import compaction, responses_over_chat, responses_passthrough
from shim.turns.context import TurnContext
from shim.turns.pump import Last
from shim.upstream.routing import Resolved, bearer
from shim.wire import responses as r
from shim.wire.responses_decode import decode_compact_body, decode_create_request

__all__ = [
    "SSE_HEADERS",
    "answer_compact",
    "answer_create",
    "compact_response",
    "create_response",
    "diagnostics_headers",
    "json_response",
    "write_bytes",
]

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_encoder = msgspec.json.Encoder()


def json_response(content: bytes, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=content, media_type="application/json", headers=headers or None)


def diagnostics_headers(diags: Diagnostics, headers: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(headers or {})
    if diags:
        out["x-shim-diagnostics"] = diags.header_value()
    return out


async def _sse(batches: AsyncIterator[Sequence[r.StreamingEvent | bytes] | None]) -> AsyncIterator[bytes]:
    # One message per batch (a burst of upstream chunks), not per event: each message costs a
    # trip down the ASGI send chain and a socket write. Bytes: text deltas the translator wrote
    # as SSE already. The pump's ``Last`` batch goes out with ``[DONE]`` as the closing chunk.
    done = True
    async for batch in batches:
        if batch is None:
            yield KEEPALIVE
            continue
        body = b"".join([e if isinstance(e, bytes) else encode_tagged(e) for e in batch])
        if type(batch) is Last:
            done = False
            yield Closing(body + DONE)
        else:
            yield body
    if done:
        yield DONE


async def write_bytes(batches: AsyncIterator[list[bytes] | None]) -> AsyncIterator[bytes]:
    """The SSE bytes of a pass-through's batches; its ``Last`` batch as the closing chunk."""
    async for batch in batches:
        if batch is None:
            yield KEEPALIVE
        elif type(batch) is Last:
            yield Closing(b"".join(batch))
        else:
            yield b"".join(batch)


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
    return await answer_create(await call_of(request, app_state(request.app)))


async def answer_create(call: Call) -> Response[Any]:
    """``POST /v1/responses`` (also called straight by ``http/hot_routes.py``)."""
    state = call.state
    ctx = state.turns
    raw = call.body
    body, unknown = decode_create_request(raw)  # unknown fields: reported by the turn
    client_key = bearer(call.header(b"authorization"))
    resolved = ctx.router.resolve(body.model, client_key)
    if resolved.route.kind == "responses":  # the upstream speaks Open Responses
        return await _pass_through(ctx, raw, body, resolved, client_key)
    turn = await responses_over_chat.prepare(ctx, body, resolved, client_key, unknown=unknown)
    if body.background:  # answered `queued` at once; the turn runs as a task (turns/background.py)
        queued = await state.background.start(turn)
        return json_response(_encoder.encode(queued), diagnostics_headers(turn.diags))
    # Diagnostics once the upstream answered: a fallback's translation may have added some.
    if body.stream:
        upstream = await responses_over_chat.open_stream(ctx, turn)
        batches = responses_over_chat.sse_batches(ctx, turn, upstream)
        headers = {**SSE_HEADERS, **diagnostics_headers(turn.diags)}
        return Stream(_sse(batches), media_type="text/event-stream", headers=headers)
    resource = await unless_client_leaves(call.receive, responses_over_chat.complete(ctx, turn), call.listen)
    if resource is None:
        return client_left()
    return json_response(_encoder.encode(resource), diagnostics_headers(turn.diags))


async def _pass_through(
    ctx: TurnContext, raw: bytes, body: r.CreateResponseBody, resolved: Resolved, client_key: str | None
) -> Response[Any]:
    turn = await responses_passthrough.prepare(ctx, raw, body, resolved, client_key)
    if not body.stream:
        content = await responses_passthrough.complete(ctx, turn)
        return json_response(content, diagnostics_headers(turn.diags))
    upstream = await responses_passthrough.open_stream(ctx, turn)
    batches = responses_passthrough.chunks(ctx, turn, upstream)
    headers = {**SSE_HEADERS, **diagnostics_headers(turn.diags)}  # reasoning a failover dropped
    return Stream(write_bytes(batches), media_type="text/event-stream", headers=headers)


@post(
    "/v1/responses/compact",
    status_code=200,
    summary="Compact a conversation",
    tags=["responses"],
    operation_class=documented(request=r.CompactResponseMethodPublicBody, response=r.CompactResource),
)
async def compact_response(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await answer_compact(await call_of(request, app_state(request.app)))


async def answer_compact(call: Call) -> Response[bytes]:
    """``POST /v1/responses/compact`` (also called straight by ``http/hot_routes.py``)."""
    ctx = call.state.turns
    raw = call.body
    body = decode_compact_body(raw)
    client_key = bearer(call.header(b"authorization"))
    resolved = ctx.router.resolve(body.model, client_key)  # 400 missing_required_parameter
    if resolved.route.kind == "responses":
        return json_response(await compaction.pass_through(ctx, raw, resolved))
    resource, diags = await compaction.compact(ctx, body, resolved, client_key)
    return json_response(_encoder.encode(resource), diagnostics_headers(diags))

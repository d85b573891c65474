"""``POST /v1/responses/compact`` over a Chat upstream: the thin IO around ``translate/compaction``.

A route whose upstream speaks Open Responses forwards the request instead (its compaction items
are the upstream's own). Over Chat, the window is ``previous_response_id``'s stored history (one store read) plus ``input``; sealed
items in it are opened first, so compacting an already compacted window works. The upstream
model writes the summary in one non-streaming call; the answer is a ``response.compaction``
resource whose ``compaction`` item carries the summary sealed for the caller. The item is
accepted back as input by ``POST /v1/responses`` and WebSocket turns (``SealedItems.open_items``),
which replay it upstream as one summary message.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post

from shim.core.diagnostics import Diagnostics
from shim.errors import InvalidRequest, PreviousResponseNotFound, UpstreamError
from shim.routing import Resolved, bearer
from shim.server.openapi import documented
from shim.server.responses_service import ResponsesService
from shim.translate.chat_request import to_chat_request
from shim.translate.compaction import (
    compact_resource,
    summarise_body,
    summary_text,
)
from shim.translate.echo import response_template
from shim.translate.history import string_input
from shim.translate.pipeline import chat_completion_to_response
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import decode_compact_body

__all__ = ["compact", "compact_response"]

_encoder = msgspec.json.Encoder()


async def compact(
    service: ResponsesService, body: r.CompactResponseMethodPublicBody, client_key: str | None
) -> tuple[r.CompactResource, Diagnostics]:
    resolved = service.router.resolve(body.model, client_key)  # 400 missing_required_parameter
    history: list[r.ItemParam] = []
    if body.previous_response_id:
        scopes = service.scopes(client_key)
        previous = await service.store.load_any(scopes, body.previous_response_id) if service.store else None
        if previous is None:
            raise PreviousResponseNotFound(
                f"Previous response with id {body.previous_response_id!r} not found.",
                param="previous_response_id",
            )
        history = previous.history
    window = [*history, *string_input(body.input)]
    if not window:
        raise InvalidRequest("There is nothing to compact.", param="input", code="missing_input")

    config = service.compaction
    sealed = service.sealed(*service.scopes(client_key))
    create, prompt = summarise_body(body, config)
    diags = Diagnostics(service.policy)
    chat_request = to_chat_request(
        create,
        [*sealed.open_items(window, len(history)), prompt],
        model=resolved.upstream_model,
        dialect=resolved.dialect,
        diags=diags,
        stream=False,
    )
    answer = await service.upstream.send(
        resolved, "/chat/completions", c.encode_chat_request(chat_request), stream=False
    )
    template = response_template(
        create,
        response_id=service.ids("resp"),
        created_at=service.clock(),
        model=body.model or "",
        store=False,
    )
    try:
        resource, _ = chat_completion_to_response(
            template, resolved.dialect, answer.content, ids=service.ids, clock=service.clock
        )
    except msgspec.DecodeError as exc:
        raise UpstreamError(
            f"The upstream's answer is not a Chat completion: {exc}", code="upstream_invalid_response"
        ) from None
    summary = summary_text(resource)
    if not summary:
        raise UpstreamError("The upstream model wrote no summary.", code="upstream_empty_summary")
    result = compact_resource(
        response_id=template.id,
        created_at=template.created_at,
        window=window,
        sealed_summary=sealed.seal_summary(summary),
        usage=resource.usage,
        config=config,
        ids=service.ids,
    )
    return result, diags


async def _pass_through(service: ResponsesService, raw: bytes, resolved: Resolved) -> bytes:
    """A Responses upstream compacts by itself: the body goes as sent (model renamed by the route)."""
    data = msgspec.json.decode(raw)
    data["model"] = resolved.upstream_model
    answer = await service.upstream.send(resolved, "/responses/compact", _encoder.encode(data), stream=False)
    return answer.content


@post(
    "/v1/responses/compact",
    status_code=200,
    summary="Compact a conversation",
    tags=["responses"],
    operation_class=documented(request=r.CompactResponseMethodPublicBody, response=r.CompactResource),
)
async def compact_response(request: Request[Any, Any, Any]) -> Response[bytes]:
    service: ResponsesService = request.app.state.service
    raw = await request.body()
    body = decode_compact_body(raw)
    client_key = bearer(request.headers.get("authorization"))
    resolved = service.router.resolve(body.model, client_key)
    if resolved.route.kind == "responses":
        content = await _pass_through(service, raw, resolved)
        return Response(content=content, media_type="application/json")
    resource, diags = await compact(service, body, client_key)
    headers = {"x-shim-diagnostics": diags.header_value()} if diags else None
    return Response(content=_encoder.encode(resource), media_type="application/json", headers=headers)

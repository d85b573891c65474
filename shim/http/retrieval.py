"""OpenAI's endpoints on stored responses, beyond the spec's two: retrieve, delete, list a
response's input items, cancel a background response.

Every lookup is scoped to the caller (``TurnContext.scopes``: its scope under the current
secret, then under each previous one, so rotation loses nothing): another caller's id, an id
never stored and a store-less server all answer the same 404 ``not_found``.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import Parameter

from shim.errors import InvalidRequest, NotFound
from shim.http.openapi import documented
from shim.http.paging import After, Limit, Order, check_limit, page_items
from shim.http.state import app_state
from shim.store.repository import ResponseStore, StoredResponse
from shim.upstream.routing import bearer
from shim.wire import responses as r

__all__ = [
    "DeletedResponse",
    "InputItemList",
    "cancel_response",
    "delete_response",
    "list_input_items",
    "listed_items",
    "retrieval_handlers",
    "retrieve_response",
]

_encoder = msgspec.json.Encoder()
_ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
    "compaction": "cmp",
}


class DeletedResponse(msgspec.Struct):
    """``DELETE /v1/responses/{id}``."""

    id: str
    object: Literal["response.deleted"]
    deleted: bool


class InputItemList(msgspec.Struct):
    """``GET /v1/responses/{id}/input_items``: one page of the turn's own input items (not those
    of earlier turns), each with an ``id``; ``first_id``/``last_id`` are ``null`` on an empty page."""

    data: list[r.ItemParam]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: Literal["list"]


ResponseId = Annotated[str, Parameter(description="The id of a response this caller stored.")]


def _json(data: Any) -> Response[bytes]:
    return Response(content=_encoder.encode(data), media_type="application/json")


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id {response_id!r} not found.", param="response_id")


def _caller(request: Request[Any, Any, Any]) -> tuple[ResponseStore | None, tuple[str, ...]]:
    """The store and the caller's scopes; shim keys are checked first when configured."""
    ctx = app_state(request.app).turns
    client_key = bearer(request.headers.get("authorization"))
    ctx.router.check_client_if_required(client_key)
    return ctx.store, ctx.scopes(client_key)


async def _load(request: Request[Any, Any, Any], response_id: str) -> StoredResponse:
    store, scopes = _caller(request)
    runner = app_state(request.app).background
    for scope in scopes if store is not None else ():
        stored = await runner.load(scope, response_id)  # ends lost jobs
        if stored is not None:
            return stored
    raise _not_found(response_id)


def listed_items(stored: StoredResponse) -> list[dict[str, Any]]:
    """The input items as OpenAI lists them: each with an ``id`` (derived from the response id
    and position when the client sent none, so cursors stay stable) and messages with a status
    and a list of content parts."""
    out: list[dict[str, Any]] = []
    for n, item in enumerate(stored.input_items):
        data: dict[str, Any] = {
            k: v
            for k, v in (
                item.item if isinstance(item, r.HostedItemParam) else msgspec.to_builtins(item)
            ).items()
            if v is not None
        }
        if not data.get("id"):
            digest = hashlib.sha256(f"{stored.resource.id}:{n}".encode()).hexdigest()[:48]
            data["id"] = f"{_ID_PREFIX.get(data['type'], 'item')}_{digest}"
        if data["type"] == "message":
            if isinstance(data.get("content"), str):
                part = "output_text" if data["role"] == "assistant" else "input_text"
                data["content"] = [{"type": part, "text": data["content"]}]
            data["status"] = data.get("status") or "completed"
        out.append(data)
    return out


@get(
    "/v1/responses/{response_id:str}",
    summary="Retrieve a stored response",
    tags=["responses"],
    operation_class=documented(response=r.ResponseResource, errors=("400", "401", "404")),
)
async def retrieve_response(
    request: Request[Any, Any, Any],
    response_id: ResponseId,
    stream: Annotated[
        bool, Parameter(description="Replaying a response as events is not supported: `true` is a 400.")
    ] = False,
) -> Response[bytes]:
    """The stored resource; for a ``background`` response, its current status (poll this)."""
    if stream:
        raise InvalidRequest(
            "Streaming a stored response is not supported; retrieve it without `stream`.",
            param="stream",
            code="unsupported_parameter",
        )
    return _json((await _load(request, response_id)).resource)


@delete(
    "/v1/responses/{response_id:str}",
    status_code=200,
    summary="Delete a stored response",
    tags=["responses"],
    operation_class=documented(response=DeletedResponse, errors=("400", "401", "404")),
)
async def delete_response(request: Request[Any, Any, Any], response_id: ResponseId) -> Response[bytes]:
    """Deleting a running background response also stops it."""
    store, scopes = _caller(request)
    for scope in scopes if store is not None else ():
        if store is not None and await store.delete(scope, response_id):
            await app_state(request.app).background.stopped(scope, response_id)
            return _json(DeletedResponse(id=response_id, object="response.deleted", deleted=True))
    raise _not_found(response_id)


@get(
    "/v1/responses/{response_id:str}/input_items",
    summary="List a stored response's input items",
    tags=["responses"],
    operation_class=documented(response=InputItemList, errors=("400", "401", "404")),
)
async def list_input_items(
    request: Request[Any, Any, Any],
    response_id: ResponseId,
    after: After = None,
    limit: Limit = 20,
    order: Order = "desc",
) -> Response[bytes]:
    check_limit(limit)
    stored = await _load(request, response_id)
    items = listed_items(stored)
    return _json(
        page_items(items, after=after, limit=limit, order=order, what="input item", where="in this response")
    )


@post(
    "/v1/responses/{response_id:str}/cancel",
    status_code=200,
    summary="Cancel a background response",
    tags=["responses"],
    operation_class=documented(response=r.ResponseResource, errors=("400", "401", "404")),
)
async def cancel_response(request: Request[Any, Any, Any], response_id: ResponseId) -> Response[bytes]:
    """Only a ``queued`` or ``in_progress`` background response can be cancelled (400 otherwise);
    cancelling a cancelled one returns it again."""
    store, scopes = _caller(request)
    runner = app_state(request.app).background
    for scope in scopes if store is not None else ():
        cancelled = await runner.cancel(scope, response_id)
        if cancelled is not None:  # the scope that holds it
            return _json(cancelled)
    raise _not_found(response_id)


retrieval_handlers = [retrieve_response, delete_response, list_input_items, cancel_response]

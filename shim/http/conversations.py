"""OpenAI's Conversations API (``client.conversations`` in openai-python), over the store.

``POST /v1/conversations`` · ``GET`` / ``POST`` (metadata) / ``DELETE /v1/conversations/{id}`` ·
``GET`` / ``POST /v1/conversations/{id}/items`` · ``GET`` / ``DELETE .../items/{item_id}``.
Records live in ``shim/store/conversations.py`` (every change a compare-and-set); a Responses
turn with ``conversation`` reads and appends through the same store. Every lookup is scoped to
the caller: another caller's id, an unknown id and a store-less server all answer 404
``not_found``. Bodies are decoded by us, unknown fields refused, so nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import Parameter

from shim.conversation.conversation_items import MAX_ITEMS_PER_CALL, append_items, with_ids
from shim.conversation.conversation_items import item_id as item_id_of
from shim.conversation.history import resolve_references
from shim.errors import InvalidRequest, NotFound
from shim.http.openapi import documented
from shim.http.paging import After, Limit, Order, check_limit, page_items
from shim.http.state import app_state
from shim.limits import check_create_body
from shim.store.conversations import ConversationStore, StoredConversation
from shim.translate.request_fields import INCLUDABLE
from shim.turns.context import TurnContext
from shim.upstream.routing import bearer
from shim.wire import responses as r
from shim.wire.responses_decode import normalise_input_items, validation_param

__all__ = ["conversation_handlers"]

_encoder = msgspec.json.Encoder()
_any = msgspec.json.Decoder()


class ConversationCreateBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    items: list[r.ItemParam] | None = None
    metadata: dict[str, str] | None = None


class ConversationUpdateBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    metadata: dict[str, str] | None


class ItemsCreateBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    items: list[r.ItemParam]


class Conversation(msgspec.Struct):
    id: str
    created_at: int
    metadata: dict[str, str]
    object: Literal["conversation"] = "conversation"


class ConversationDeleted(msgspec.Struct):
    id: str
    deleted: bool
    object: Literal["conversation.deleted"] = "conversation.deleted"


class ConversationItemList(msgspec.Struct):
    """A page of items; ``first_id``/``last_id`` are ``null`` on an empty page."""

    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: Literal["list"] = "list"


ConversationId = Annotated[str, Parameter(description="The id of a conversation this caller created.")]
ItemId = Annotated[str, Parameter(description="The id of an item of that conversation.")]
Include = Annotated[
    list[str] | None,
    Parameter(description="`reasoning.encrypted_content`, `message.output_text.logprobs`, …"),
]


# --------------------------------------------------------------------------- helpers


def _json(data: Any) -> Response[bytes]:
    return Response(content=_encoder.encode(data), media_type="application/json")


def _caller(request: Request[Any, Any, Any]) -> tuple[TurnContext, ConversationStore | None, str]:
    ctx = app_state(request.app).turns
    client_key = bearer(request.headers.get("authorization"))
    ctx.router.check_client_if_required(client_key)
    return ctx, ctx.conversations, ctx.scope(client_key)


def _missing(conversation_id: str) -> NotFound:
    return NotFound(f"Conversation with id {conversation_id!r} not found.", param="conversation_id")


def _store(store: ConversationStore | None, conversation_id: str) -> ConversationStore:
    if store is None:
        raise _missing(conversation_id)
    return store


async def _home(request: Request[Any, Any, Any], conversation_id: str) -> tuple[str, StoredConversation]:
    """The scope the conversation lives under and the conversation: the current secret's scope
    first, then the previous secrets' (a rotation keeps conversations, as it keeps responses)."""
    ctx, store, _ = _caller(request)
    client_key = bearer(request.headers.get("authorization"))
    for scope in ctx.scopes(client_key):
        found = await _store(store, conversation_id).load(scope, conversation_id)
        if found is not None:
            return scope, found
    raise _missing(conversation_id)


async def _load(request: Request[Any, Any, Any], conversation_id: str) -> StoredConversation:
    return (await _home(request, conversation_id))[1]


def _decode(raw: bytes, typ: type[Any]) -> Any:
    try:
        data = _any.decode(raw) if raw.strip() else {}
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    if isinstance(data.get("items"), list):
        data["items"] = normalise_input_items(data["items"])
    try:
        return msgspec.convert(data, typ)
    except msgspec.ValidationError as exc:
        text = str(exc)
        code = "unsupported_parameter" if "unknown field" in text else "invalid_value"
        param = validation_param(exc)
        if code == "unsupported_parameter":
            param = text.split("`")[1] if "`" in text else param
        raise InvalidRequest(
            f"Invalid request: {text.split(' - at `', 1)[0]}", param=param, code=code
        ) from None


def _check(
    ctx: TurnContext, scope: str, items: list[r.ItemParam] | None, metadata: dict[str, str] | None
) -> None:
    """The limits of a response's input and metadata; sealed items must open for this caller now,
    not fail a later turn."""
    if items is not None and len(items) > MAX_ITEMS_PER_CALL:
        raise InvalidRequest(
            f"`items` has {len(items)} entries; at most {MAX_ITEMS_PER_CALL} can be added at a time.",
            param="items",
            code="too_many_items",
        )
    with _named_items():
        check_create_body(r.CreateResponseBody(input=items, metadata=metadata), ctx.limits)
        ctx.sealed(scope).open_items(items or [])


@contextmanager
def _named_items() -> Iterator[None]:
    """The checks shared with responses name ``input[n]``; here the field is ``items``."""
    try:
        yield
    except InvalidRequest as exc:
        if exc.param is not None and exc.param.startswith("input"):
            exc.param = "items" + exc.param.removeprefix("input")
            exc.message = exc.message.replace("input[", "items[")
        raise


def _include(include: list[str] | None) -> frozenset[str]:
    for n, value in enumerate(include or ()):
        if value not in INCLUDABLE:
            raise InvalidRequest(
                f"`include` value {value!r} is not supported.", param=f"include[{n}]", code="invalid_value"
            )
    return frozenset(include or ())


def _shown(item: r.ItemParam, include: frozenset[str]) -> dict[str, Any]:
    """An item as OpenAI lists it: messages with a status and a list of content parts; sealed
    reasoning and logprobs only when ``include`` asks for them."""
    data: dict[str, Any] = {
        k: v
        for k, v in (item.item if isinstance(item, r.HostedItemParam) else msgspec.to_builtins(item)).items()
        if v is not None
    }
    if data["type"] == "message":
        if isinstance(data.get("content"), str):
            part = "output_text" if data["role"] == "assistant" else "input_text"
            data["content"] = [{"type": part, "text": data["content"]}]
        data["status"] = data.get("status") or "completed"
        if "message.output_text.logprobs" not in include:
            for content in data["content"]:
                if isinstance(content, dict):
                    content.pop("logprobs", None)
    if data["type"] == "reasoning" and "reasoning.encrypted_content" not in include:
        data.pop("encrypted_content", None)
    return data


def _conversation(stored: StoredConversation) -> Conversation:
    return Conversation(id=stored.id, created_at=stored.created_at, metadata=stored.metadata)


# --------------------------------------------------------------------------- conversations


@post(
    "/v1/conversations",
    status_code=200,
    summary="Create a conversation",
    tags=["conversations"],
    operation_class=documented(request=ConversationCreateBody, response=Conversation),
)
async def create_conversation(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Up to 20 initial `items`; `metadata` as on responses (at most 16 pairs)."""
    ctx, store, scope = _caller(request)
    body: ConversationCreateBody = _decode(await request.body(), ConversationCreateBody)
    _check(ctx, scope, body.items, body.metadata)
    if store is None:
        raise InvalidRequest(
            "Conversations need a store; this server runs without one.", code="unsupported_parameter"
        )
    with _named_items():
        items = with_ids(resolve_references(list(body.items or ()), []), ctx.ids)
    stored = StoredConversation(
        id=ctx.ids("conv"), created_at=ctx.clock(), metadata=body.metadata or {}, items=items
    )
    if not await store.create(scope, stored):  # ids are random: only a broken id factory gets here
        raise InvalidRequest(f"Conversation id {stored.id!r} is already in use.", code="conflict")
    return _json(_conversation(stored))


@get(
    "/v1/conversations/{conversation_id:str}",
    summary="Retrieve a conversation",
    tags=["conversations"],
    operation_class=documented(response=Conversation, errors=("400", "401", "404")),
)
async def retrieve_conversation(
    request: Request[Any, Any, Any], conversation_id: ConversationId
) -> Response[bytes]:
    return _json(_conversation(await _load(request, conversation_id)))


@post(
    "/v1/conversations/{conversation_id:str}",
    status_code=200,
    summary="Update a conversation's metadata",
    tags=["conversations"],
    operation_class=documented(request=ConversationUpdateBody, response=Conversation),
)
async def update_conversation(
    request: Request[Any, Any, Any], conversation_id: ConversationId
) -> Response[bytes]:
    """`metadata` replaces the conversation's metadata whole (`null`: none)."""
    ctx, store, scope = _caller(request)
    body: ConversationUpdateBody = _decode(await request.body(), ConversationUpdateBody)
    _check(ctx, scope, None, body.metadata)
    metadata = body.metadata or {}
    home, _ = await _home(request, conversation_id)
    changed = await _store(store, conversation_id).change(
        home, conversation_id, lambda current: msgspec.structs.replace(current, metadata=metadata)
    )
    if changed is None:
        raise _missing(conversation_id)
    return _json(_conversation(changed))


@delete(
    "/v1/conversations/{conversation_id:str}",
    status_code=200,
    summary="Delete a conversation",
    tags=["conversations"],
    operation_class=documented(response=ConversationDeleted, errors=("400", "401", "404")),
)
async def delete_conversation(
    request: Request[Any, Any, Any], conversation_id: ConversationId
) -> Response[bytes]:
    """The conversation and its items; responses created in it stay retrievable."""
    _, store, _ = _caller(request)
    home, _ = await _home(request, conversation_id)
    if not await _store(store, conversation_id).delete(home, conversation_id):
        raise _missing(conversation_id)
    return _json(ConversationDeleted(id=conversation_id, deleted=True))


# --------------------------------------------------------------------------- items


@get(
    "/v1/conversations/{conversation_id:str}/items",
    summary="List a conversation's items",
    tags=["conversations"],
    operation_class=documented(response=ConversationItemList, errors=("400", "401", "404")),
)
async def list_items(
    request: Request[Any, Any, Any],
    conversation_id: ConversationId,
    after: After = None,
    limit: Limit = 20,
    order: Order = "desc",
    include: Include = None,
) -> Response[bytes]:
    check_limit(limit)
    shown = _include(include)
    stored = await _load(request, conversation_id)
    items = [_shown(item, shown) for item in stored.items]
    return _json(
        page_items(items, after=after, limit=limit, order=order, what="item", where="in this conversation")
    )


@post(
    "/v1/conversations/{conversation_id:str}/items",
    status_code=200,
    summary="Add items to a conversation",
    tags=["conversations"],
    operation_class=documented(request=ItemsCreateBody, response=ConversationItemList),
)
async def create_items(
    request: Request[Any, Any, Any], conversation_id: ConversationId, include: Include = None
) -> Response[bytes]:
    """Up to 20 items, appended as one block; the answer lists them as stored (with ids)."""
    ctx, store, scope = _caller(request)
    shown = _include(include)
    body: ItemsCreateBody = _decode(await request.body(), ItemsCreateBody)
    _check(ctx, scope, body.items, None)
    home, current = await _home(request, conversation_id)
    with _named_items():  # a reference copies an earlier item
        items = resolve_references(body.items, current.items)
    appended = await append_items(_store(store, conversation_id), home, conversation_id, items, ctx.ids)
    if appended is None:
        raise _missing(conversation_id)
    data = [_shown(item, shown) for item in appended[1]]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return _json(ConversationItemList(data=data, first_id=first, last_id=last, has_more=False))


def _find(stored: StoredConversation, item_id: str) -> r.ItemParam:
    for item in stored.items:
        if item_id_of(item) == item_id:
            return item
    raise NotFound(f"Item with id {item_id!r} not found in conversation {stored.id!r}.", param="item_id")


@get(
    "/v1/conversations/{conversation_id:str}/items/{item_id:str}",
    summary="Retrieve an item of a conversation",
    tags=["conversations"],
    operation_class=documented(response=r.MessageItemParam, errors=("400", "401", "404")),
)
async def retrieve_item(
    request: Request[Any, Any, Any], conversation_id: ConversationId, item_id: ItemId, include: Include = None
) -> Response[bytes]:
    shown = _include(include)
    return _json(_shown(_find(await _load(request, conversation_id), item_id), shown))


@delete(
    "/v1/conversations/{conversation_id:str}/items/{item_id:str}",
    status_code=200,
    summary="Delete an item of a conversation",
    tags=["conversations"],
    operation_class=documented(response=Conversation, errors=("400", "401", "404")),
)
async def delete_item(
    request: Request[Any, Any, Any], conversation_id: ConversationId, item_id: ItemId
) -> Response[bytes]:
    """Later turns no longer see the item; the answer is the conversation."""
    _, store, _ = _caller(request)
    home, _ = await _home(request, conversation_id)

    def without(current: StoredConversation) -> StoredConversation:
        _find(current, item_id)  # 404 for an unknown item
        return msgspec.structs.replace(current, items=[i for i in current.items if item_id_of(i) != item_id])

    changed = await _store(store, conversation_id).change(home, conversation_id, without)
    if changed is None:
        raise _missing(conversation_id)
    return _json(_conversation(changed))


conversation_handlers = [
    create_conversation,
    retrieve_conversation,
    update_conversation,
    delete_conversation,
    list_items,
    create_items,
    retrieve_item,
    delete_item,
]

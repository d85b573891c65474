"""The one history rule: what a turn continues from, for every caller.

``previous_response_id``, item references and pending background responses mean the same on
every path that reads history: a Responses turn over Chat, the pass-through to a stateless
Responses upstream, compaction and WebSocket turns (which look in their connection's own
responses first). The rule:

- ``previous_response_id`` absent (``None``): no history. Present, even ``""``: it must name a
  response of this caller (one store read per scope ``TurnContext.scopes`` gives: the current
  secret's, then those of previous secrets; a WebSocket connection's own map first), else 404
  ``previous_response_not_found``; a background response still ``queued``/``in_progress`` has no
  output yet: 400 ``previous_response_pending``.
- ``item_reference`` inputs name items of that history by id and are replaced by them; an
  unknown id is 400 ``not_found`` naming ``input[n].id``.
- ``conversation`` (an id, or ``{"id": ...}``): the conversation's items are the history; it
  must name a conversation of this caller, else 404 ``conversation_not_found``. Together with
  ``previous_response_id`` it is a 400: a turn continues from one place.
- ``instructions`` are not inherited (the store keeps items only).
- A ``compaction`` item made by ``context_management`` starts the window: what stands before the
  latest one (system and developer messages aside) is what it summarised and is not sent
  upstream again. The item's content is sealed, so the cut happens where it is opened
  (``SealedItems.open_items``); the history itself stays whole (it is the client's record).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shim.errors import InvalidRequest, NotFound, PreviousResponseNotFound
from shim.store.conversations import ConversationStore, StoredConversation
from shim.store.repository import PENDING, ResponseStore, StoredResponse
from shim.translate.history import string_input
from shim.wire import responses as r

__all__ = ["History", "continue_from", "conversation_id", "resolve_references"]


@dataclass
class History:
    previous: StoredResponse | None
    items: list[r.ItemParam]  # the items the previous response's turn ended with
    new_input: list[r.ItemParam]  # this turn's input, references resolved
    conversation: StoredConversation | None = None  # the conversation it continues, as read
    conversation_scope: str | None = None  # the scope it lives under: its turn appends there

    @property
    def window(self) -> list[r.ItemParam]:
        """Everything the upstream sees: the history, then the new input."""
        return [*self.items, *self.new_input]


async def continue_from(
    store: ResponseStore | None,
    scopes: tuple[str, ...],
    previous_response_id: str | None,
    input: str | list[r.ItemParam] | None,
    *,
    local: Mapping[str, StoredResponse] | None = None,
    conversation: object = None,
    conversations: ConversationStore | None = None,
) -> History:
    previous: StoredResponse | None = None
    items: list[r.ItemParam] = []
    conv_id = conversation_id(conversation)
    if conv_id is not None:
        if previous_response_id is not None:
            raise InvalidRequest(
                "`previous_response_id` and `conversation` cannot be used together: a response "
                "continues either a previous response or a conversation.",
                param="conversation",
                code="invalid_parameter",
            )
        found, home = None, scopes[0]
        if conversations is not None:
            for home in scopes:  # the previous secrets' scopes too: a rotation keeps it
                found = await conversations.load(home, conv_id)
                if found is not None:
                    break
        if found is None:
            raise NotFound(
                f"Conversation with id {conv_id!r} not found.",
                param="conversation",
                code="conversation_not_found",
            )
        return History(None, found.items, resolve_references(string_input(input), found.items), found, home)
    if previous_response_id is not None:  # "" is an id that names nothing, not "no id"
        if local is not None:
            previous = local.get(previous_response_id)
        if previous is None and store is not None:
            previous = await store.load_any(scopes, previous_response_id)
        if previous is None:
            raise PreviousResponseNotFound(
                f"Previous response with id {previous_response_id!r} not found.",
                param="previous_response_id",
            )
        if previous.resource.status in PENDING:  # a background response has no output yet
            raise InvalidRequest(
                f"Previous response {previous_response_id!r} is still {previous.resource.status}.",
                param="previous_response_id",
                code="previous_response_pending",
            )
        items = previous.history
    return History(previous, items, resolve_references(string_input(input), items))


def resolve_references(items: list[r.ItemParam], history: list[r.ItemParam]) -> list[r.ItemParam]:
    if not any(isinstance(i, r.ItemReferenceParam) for i in items):
        return items
    known = {getattr(i, "id", None): i for i in history if getattr(i, "id", None)}
    out: list[r.ItemParam] = []
    for n, item in enumerate(items):
        if isinstance(item, r.ItemReferenceParam):
            found = known.get(item.id)
            if found is None:
                raise InvalidRequest(
                    f"Item {item.id!r} was not found.", param=f"input[{n}].id", code="not_found"
                )
            out.append(found)
        else:
            out.append(item)
    return out


def conversation_id(value: object) -> str | None:
    """``conversation`` as sent: an id, or an object ``{"id": ...}`` (openai-python's two forms)."""
    if value is None:
        return None
    if isinstance(value, dict) and set(value) == {"id"}:
        value = value["id"]
    if not isinstance(value, str) or not value:
        raise InvalidRequest(
            '`conversation` must be a conversation id or an object `{"id": ...}`.',
            param="conversation",
            code="invalid_type",
        )
    return value

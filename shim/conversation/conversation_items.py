"""Adding items to a conversation: ids for every item, one atomic append per turn.

Used by ``POST /v1/conversations`` and ``/items`` (``http/conversations.py``) and by every
Responses turn with ``conversation`` (``turns/responses_over_chat.py``,
``turns/responses_passthrough.py``): a turn's input and output items go in as one block, by one
compare-and-set (``ConversationStore.change``), so concurrent turns never interleave.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

import msgspec

from shim.errors import InvalidRequest
from shim.ids import IdFactory
from shim.store.conversations import ConversationStore, StoredConversation
from shim.wire import responses as r

__all__ = ["MAX_ITEMS_PER_CALL", "ConversationTurn", "append_items", "item_id", "turn_finished", "with_ids"]

MAX_ITEMS_PER_CALL = 20  # OpenAI's bound on `items` in one create / add call
APPENDED = frozenset({"completed", "incomplete"})  # a failed turn leaves its conversation alone

log = logging.getLogger("shim.conversations")

_PREFIX = {
    r.MessageItemParam: "msg",
    r.FunctionCallItemParam: "fc",
    r.FunctionCallOutputItemParam: "fco",
    r.ReasoningItemParam: "rs",
    r.CompactionSummaryItemParam: "cmp",
    r.CustomToolCallItemParam: "ctc",
    r.CustomToolCallOutputItemParam: "ctco",
    r.ApplyPatchCallItemParam: "apc",
    r.ApplyPatchCallOutputItemParam: "apco",
    r.ShellCallItemParam: "sh",
    r.ShellCallOutputItemParam: "sho",
    r.LocalShellCallItemParam: "lsh",
    r.LocalShellCallOutputItemParam: "lsho",
}


def item_id(item: r.ItemParam) -> str | None:
    """An item's id; a hosted item (kept whole as a dict) carries it inside."""
    if isinstance(item, r.HostedItemParam):
        found = item.item.get("id")
        return found if isinstance(found, str) else None
    return item.id


def _with_id(item: r.ItemParam, new: str) -> r.ItemParam:
    if isinstance(item, r.HostedItemParam):
        return msgspec.structs.replace(item, item={**item.item, "id": new})
    return msgspec.structs.replace(item, id=new)


def with_ids(items: Iterable[r.ItemParam], ids: IdFactory, taken: Iterable[str] = ()) -> list[r.ItemParam]:
    """Every item with an id unique in the conversation: an item without one (or one whose id is
    already there, as a copy made from an ``item_reference`` is) gets a new one."""
    seen = set(taken)
    out: list[r.ItemParam] = []
    for item in items:
        if isinstance(item, r.ItemReferenceParam):  # resolved before this; never stored as such
            raise InvalidRequest("An `item_reference` cannot be stored in a conversation.", param="items")
        current = item_id(item)
        if current is None or current in seen:
            current = ids(_PREFIX.get(type(item), "item"))
            item = _with_id(item, current)
        seen.add(current)
        out.append(item)
    return out


async def append_items(
    store: ConversationStore, scope: str, conversation_id: str, items: list[r.ItemParam], ids: IdFactory
) -> tuple[StoredConversation, list[r.ItemParam]] | None:
    """Append ``items`` as one block; the conversation after it and the items as stored (with
    their ids), or ``None`` when the conversation does not exist."""
    added: list[r.ItemParam] = []

    def update(current: StoredConversation) -> StoredConversation:
        nonlocal added
        added = with_ids(items, ids, (found for i in current.items if (found := item_id(i))))
        return msgspec.structs.replace(current, items=[*current.items, *added])

    changed = await store.change(scope, conversation_id, update)
    return None if changed is None else (changed, added)


class ConversationTurn(Protocol):
    """What a Responses turn knows of its conversation (both turn kinds in ``turns/``)."""

    scope: str
    conversation: str | None
    conversation_scope: str | None  # where it lives: an older secret's scope after a rotation
    new_input: list[r.ItemParam]


async def turn_finished(
    store: ConversationStore | None,
    turn: ConversationTurn,
    output: list[r.ItemParam],
    status: str,
    ids: IdFactory,
) -> None:
    """After a turn on a conversation: its input and output items, appended together, when the
    turn completed or stopped incomplete. A conversation deleted during the turn stays deleted."""
    conversation_id = turn.conversation
    if store is None or conversation_id is None or status not in APPENDED:
        return
    scope = turn.conversation_scope or turn.scope
    if await append_items(store, scope, conversation_id, [*turn.new_input, *output], ids) is None:
        log.info("conversation %s was deleted during a turn; its items were not kept", conversation_id)

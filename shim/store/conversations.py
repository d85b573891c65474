"""Conversations in the store: one record per conversation, changed only by compare-and-set.

A conversation (``POST /v1/conversations``, ``conversation`` on ``POST /v1/responses``) is a
list of items that many turns append to, possibly at the same moment on several replicas. Its
record holds the metadata and every item (each with an id), so a turn reads its whole history
in one read, like a stored response. Every change (items added or deleted, metadata replaced)
is ``change``: read the record's exact bytes, apply a pure function, write back only if the
bytes are still the same (``KeyValue.compare_and_set``, atomic on every backend), else re-read
and re-apply. So two turns finishing at once each append their block of items whole, one after
the other: nothing is lost and no block is split by another.

Keys are scoped like responses (``scope_of``): another caller's id reads as a missing one.
Every write renews the record's TTL, so a conversation in use does not expire.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import msgspec

from shim.store.backends import KeyValue, decode_record
from shim.store.failures import StoreUnavailable
from shim.wire import responses as r

__all__ = ["ConversationStore", "StoredConversation"]

_ATTEMPTS = 64  # re-reads before giving up on a record that keeps changing under us


class StoredConversation(msgspec.Struct, kw_only=True):
    id: str
    created_at: int
    metadata: dict[str, str] = {}
    items: list[r.ItemParam] = []  # oldest first; every item has an ``id``


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StoredConversation)


def _decode(raw: bytes | None) -> StoredConversation | None:
    return decode_record(_decoder, raw)


class ConversationStore:
    def __init__(self, backend: KeyValue, ttl: float | None) -> None:
        self.backend = backend
        self.ttl = ttl

    @staticmethod
    def _key(scope: str, conversation_id: str) -> str:
        return f"conv:{scope}:{conversation_id}"

    async def create(self, scope: str, conversation: StoredConversation) -> bool:
        """Write a new conversation; ``False`` if its id is already taken."""
        raw = _encoder.encode(conversation)
        return await self.backend.add(self._key(scope, conversation.id), raw, self.ttl)

    async def load(self, scope: str, conversation_id: str) -> StoredConversation | None:
        return _decode(await self.backend.get(self._key(scope, conversation_id)))

    async def delete(self, scope: str, conversation_id: str) -> bool:
        return await self.backend.delete(self._key(scope, conversation_id))

    async def change(
        self,
        scope: str,
        conversation_id: str,
        update: Callable[[StoredConversation], StoredConversation],
    ) -> StoredConversation | None:
        """Apply ``update`` to the current record atomically; the new record, or ``None`` when the
        conversation does not exist (or was deleted meanwhile). ``update`` may run several times
        (once per attempt) and may raise to refuse the change."""
        key = self._key(scope, conversation_id)
        for attempt in range(_ATTEMPTS):
            raw = await self.backend.get(key)
            current = _decode(raw)
            if current is None or raw is None:
                return None
            changed = update(current)
            if await self.backend.compare_and_set(key, raw, _encoder.encode(changed), self.ttl):
                return changed
            # Someone else wrote first: back off a little (jittered, growing) and re-apply.
            await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
        raise StoreUnavailable(
            f"Conversation {conversation_id!r} kept changing under {_ATTEMPTS} attempts to update it; "
            "try again."
        )

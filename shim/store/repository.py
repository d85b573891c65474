"""The typed repository of stored responses over a ``KeyValue`` backend.

One record per response holds everything a later turn needs, so continuing a chain of any
depth is one read: the resource a GET returns, this turn's input items, and the materialised
history (every input and output item up to and including this turn). Keys are scoped to the
caller by a keyed hash of its credential, never the credential itself, so another caller's id
behaves exactly like a missing one.

Background responses change state after they are first written (queued → in_progress → a final
status, or cancelled by any replica). Those transitions go through ``fetch`` + ``swap``: a
compare-and-set on the record's exact bytes, so a cancel or delete from another replica is never
overwritten by a task finishing at the same moment.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

import msgspec

from shim.store.backends import KeyValue, decode_record
from shim.wire import responses as r

__all__ = ["DEFAULT_TTL", "PENDING", "ResponseStore", "StoredResponse", "Versioned", "scope_of"]

DEFAULT_TTL = 30 * 24 * 3600.0
PENDING = frozenset({"queued", "in_progress"})  # a background response still running


class StoredResponse(msgspec.Struct, kw_only=True):
    resource: r.ResponseResource
    input_items: list[r.ItemParam]
    history: list[r.ItemParam]
    scope: str = ""
    # Reasoning item id → the dialect family that made it, for every reasoning item in
    # ``history`` the shim saw made (shim/upstream/families.py: replay across a failover).
    reasoning_origins: dict[str, str] = {}


class Versioned(msgspec.Struct, frozen=True):
    """A record as read, with the exact bytes a later ``swap`` must still find in the store."""

    stored: StoredResponse
    token: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StoredResponse)


@functools.lru_cache(maxsize=1024)  # one HMAC per request and secret otherwise (~5 us each)
def scope_of(secret: bytes, credential: str | None) -> str:
    return hmac.new(secret, (credential or "").encode(), hashlib.sha256).hexdigest()[:32]


def _decode(raw: bytes | None) -> StoredResponse | None:
    return decode_record(_decoder, raw)


class ResponseStore:
    def __init__(self, backend: KeyValue, ttl: float | None = DEFAULT_TTL) -> None:
        self.backend = backend
        self.ttl = ttl

    @staticmethod
    def _key(scope: str, response_id: str) -> str:
        return f"resp:{scope}:{response_id}"

    async def load(self, scope: str, response_id: str) -> StoredResponse | None:
        return _decode(await self.backend.get(self._key(scope, response_id)))

    async def load_any(self, scopes: tuple[str, ...], response_id: str) -> StoredResponse | None:
        """The record under the first of ``scopes`` that has it (the current secret's scope,
        then the previous secrets'; shim.conversation.keyring)."""
        for scope in scopes:
            stored = await self.load(scope, response_id)
            if stored is not None:
                return stored
        return None

    async def save(self, scope: str, stored: StoredResponse) -> None:
        await self.backend.set(self._key(scope, stored.resource.id), _encoder.encode(stored), self.ttl)

    async def delete(self, scope: str, response_id: str) -> bool:
        return await self.backend.delete(self._key(scope, response_id))

    # ------------------------------------------------------------------ state transitions

    async def create(self, scope: str, stored: StoredResponse) -> bytes | None:
        """Write a new record only if the id is unused; its token, or ``None`` if taken."""
        raw = _encoder.encode(stored)
        added = await self.backend.add(self._key(scope, stored.resource.id), raw, self.ttl)
        return raw if added else None

    async def fetch(self, scope: str, response_id: str) -> Versioned | None:
        raw = await self.backend.get(self._key(scope, response_id))
        stored = _decode(raw)
        return None if stored is None or raw is None else Versioned(stored, raw)

    async def token(self, scope: str, response_id: str) -> bytes | None:
        """The record's current bytes: a running task compares them to spot a cancel or delete."""
        return await self.backend.get(self._key(scope, response_id))

    async def swap(self, scope: str, token: bytes, stored: StoredResponse) -> bytes | None:
        """Replace the record only if it is still exactly ``token``; the new token, or ``None``
        when someone else changed or deleted it first."""
        raw = _encoder.encode(stored)
        key = self._key(scope, stored.resource.id)
        return raw if await self.backend.compare_and_set(key, token, raw, self.ttl) else None

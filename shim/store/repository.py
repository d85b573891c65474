"""The typed repository of stored responses over a ``KeyValue`` backend.

One record per response holds everything a later turn needs, so continuing a chain of any
depth is one read: the resource a GET returns, this turn's input items, and the materialised
history (every input and output item up to and including this turn). Keys are scoped to the
caller by a keyed hash of its credential, never the credential itself, so another caller's id
behaves exactly like a missing one.
"""

from __future__ import annotations

import hashlib
import hmac

import msgspec

from shim.store.backends import KeyValue
from shim.wire import responses as r

__all__ = ["ResponseStore", "StoredResponse", "scope_of"]

DEFAULT_TTL = 30 * 24 * 3600.0


class StoredResponse(msgspec.Struct, kw_only=True):
    resource: r.ResponseResource
    input_items: list[r.ItemParam]
    history: list[r.ItemParam]
    scope: str = ""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StoredResponse)


def scope_of(secret: bytes, credential: str | None) -> str:
    return hmac.new(secret, (credential or "").encode(), hashlib.sha256).hexdigest()[:32]


class ResponseStore:
    def __init__(self, backend: KeyValue, ttl: float | None = DEFAULT_TTL) -> None:
        self.backend = backend
        self.ttl = ttl

    @staticmethod
    def _key(scope: str, response_id: str) -> str:
        return f"resp:{scope}:{response_id}"

    async def load(self, scope: str, response_id: str) -> StoredResponse | None:
        raw = await self.backend.get(self._key(scope, response_id))
        if raw is None:
            return None
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError:
            return None  # a record from an incompatible version reads as missing

    async def save(self, scope: str, stored: StoredResponse) -> None:
        await self.backend.set(self._key(scope, stored.resource.id), _encoder.encode(stored), self.ttl)

    async def delete(self, scope: str, response_id: str) -> bool:
        return await self.backend.delete(self._key(scope, response_id))

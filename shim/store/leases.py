"""Leases: small keys with an expiry that say "a live replica is working on this".

A background response's record is large (its whole history) and changes only a few times; the
replica running it proves it is alive by renewing a separate, tiny key instead. Any replica can
then tell a running job from an orphan (its replica was killed, or could not write its result)
with one small read: a pending record whose lease is gone belongs to nobody.

Renewal is a compare-and-set against the holder's own token, so it also tells the holder when
someone else took the lease away (a cancel or delete from another replica releases it). Every
backend expires keys on its own (Redis ``PX``, diskcache's per-key expiry, the memory backend's
deadlines), so an orphan's lease disappears without anyone cleaning up.
"""

from __future__ import annotations

import os

from shim.store.backends import KeyValue

__all__ = ["Leases", "new_holder"]


def new_holder() -> bytes:
    """A token naming one holder (one task on one replica); random, so never shared."""
    return f"{os.getpid()}:{os.urandom(8).hex()}".encode()


class Leases:
    def __init__(self, backend: KeyValue, ttl: float) -> None:
        self.backend = backend
        self.ttl = ttl

    @staticmethod
    def _key(scope: str, name: str) -> str:
        return f"lease:{scope}:{name}"

    async def acquire(self, scope: str, name: str, holder: bytes) -> None:
        """Take (or take back) the lease for ``ttl`` seconds."""
        await self.backend.set(self._key(scope, name), holder, self.ttl)

    async def renew(self, scope: str, name: str, holder: bytes) -> bool:
        """Extend the lease by ``ttl``; ``False`` when ``holder`` no longer holds it (expired or
        released by someone else)."""
        return await self.backend.compare_and_set(self._key(scope, name), holder, holder, self.ttl)

    async def held(self, scope: str, name: str) -> bool:
        """Does anyone hold the lease?"""
        return await self.backend.get(self._key(scope, name)) is not None

    async def release(self, scope: str, name: str) -> None:
        await self.backend.delete(self._key(scope, name))

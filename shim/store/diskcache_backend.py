"""``diskcache:///path``: the embedded default, a directory holding one SQLite database.

Why it is safe to share and to crash: diskcache runs each write in one SQLite transaction (WAL
journal), so a process killed mid-write leaves the previous state, never half a record. Records
stay in SQLite rows up to ``row_limit`` (16 MiB): diskcache's separate file per value cost ~8 ms a
write on this machine against ~0.1 ms for a 200 kB row. A bigger value goes to its own file,
written *before* the row that points to it commits (at worst an orphan file after a crash).
SQLite's file locks make ``add``/``compare_and_set``/``append`` atomic across every process that
opens the directory.

Retention: each value carries its own expiry; the whole directory is bounded by ``max_bytes``,
beyond which the least recently *read or written* entries are evicted a few at a time on writes.
diskcache is synchronous, so each call runs in a worker thread off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from shim.store.failures import store_failures

__all__ = ["DEFAULT_MAX_BYTES", "DiskCacheBackend"]

DEFAULT_MAX_BYTES = 4 * 1024**3
DEFAULT_ROW_LIMIT = 16 * 1024**2

# Lists live under their own internal keys so a value ``get`` never returns a list's encoding.
_LIST = "\x00list:"
_list_codec = msgspec.msgpack.Decoder(list[bytes])
_encode = msgspec.msgpack.encode
T = TypeVar("T")


class DiskCacheBackend:
    def __init__(
        self, path: str, max_bytes: int = DEFAULT_MAX_BYTES, row_limit: int = DEFAULT_ROW_LIMIT
    ) -> None:
        # with the store, not the module: a memory:// or redis:// server never loads SQLite
        # (~1.4 MiB a worker; tests/test_lazy_imports.py)
        import sqlite3

        import diskcache  # type: ignore[import-untyped]

        Path(path).mkdir(parents=True, exist_ok=True)
        self.path = path
        self._failures: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, diskcache.Timeout)
        self._cache: Any = diskcache.Cache(
            path,
            size_limit=max_bytes,
            eviction_policy="least-recently-used",
            disk_min_file_size=row_limit,
            timeout=60,  # seconds a writer waits for another process's lock
        )

    # The synchronous bodies: each runs whole in one worker thread.

    def _get(self, key: str) -> bytes | None:
        value = self._cache.get(key)
        return value if isinstance(value, bytes) else None

    def _cas(self, key: str, expected: bytes | None, value: bytes, ttl: float | None) -> bool:
        with self._cache.transact():
            if self._get(key) != expected:
                return False
            self._cache.set(key, value, expire=ttl)
            return True

    def _delete(self, key: str) -> bool:
        with self._cache.transact():
            hit = bool(self._cache.delete(key))
            return bool(self._cache.delete(_LIST + key)) or hit

    def _append(self, key: str, value: bytes, ttl: float | None) -> int:
        with self._cache.transact():
            raw = self._cache.get(_LIST + key)
            items = _list_codec.decode(raw) if isinstance(raw, bytes) else []
            items.append(value)
            self._cache.set(_LIST + key, _encode(items), expire=ttl)
            return len(items)

    def _range(self, key: str, start: int, stop: int | None) -> list[bytes]:
        raw = self._cache.get(_LIST + key)
        return _list_codec.decode(raw)[start:stop] if isinstance(raw, bytes) else []

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        with store_failures("diskcache", *self._failures):
            return await asyncio.to_thread(fn, *args)

    # The protocol.

    async def get(self, key: str) -> bytes | None:
        return await self._run(self._get, key)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        await self._run(self._cache.set, key, bytes(value), ttl)

    async def add(self, key: str, value: bytes, ttl: float | None) -> bool:
        return bool(await self._run(self._cache.add, key, bytes(value), ttl))

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        return await self._run(self._cas, key, expected, bytes(value), ttl)

    async def delete(self, key: str) -> bool:
        return await self._run(self._delete, key)

    async def append(self, key: str, value: bytes, ttl: float | None) -> int:
        return await self._run(self._append, key, bytes(value), ttl)

    async def list_range(self, key: str, start: int = 0, stop: int | None = None) -> list[bytes]:
        return await self._run(self._range, key, start, stop)

    async def ping(self) -> bool:
        await self._run(self._cache.get, "\x00ping")
        return True

    async def aclose(self) -> None:
        self._cache.close()

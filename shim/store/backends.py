"""Key-value backends behind one small async protocol: get / set with expiry / delete.

``memory://`` for tests and one process, ``diskcache:///path`` the embedded default (sync: run
off the event loop; atomic per key, shared safely by several worker processes).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

__all__ = ["DiskCacheBackend", "KeyValue", "MemoryBackend", "default_store_url", "open_backend"]


class KeyValue(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


class MemoryBackend:
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}

    async def get(self, key: str) -> bytes | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        value, expires = hit
        if expires is not None and expires < time.monotonic():
            del self._data[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._data[key] = (value, time.monotonic() + ttl if ttl else None)

    async def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._data.clear()


class DiskCacheBackend:
    """diskcache writes each value in one SQLite transaction: whole or not at all."""

    def __init__(self, path: str, size_limit: int = 4 * 1024**3) -> None:
        import diskcache  # type: ignore[import-untyped]

        Path(path).mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(path, size_limit=size_limit, eviction_policy="least-recently-used")

    async def get(self, key: str) -> bytes | None:
        value = await asyncio.to_thread(self._cache.get, key)
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        await asyncio.to_thread(self._cache.set, key, value, ttl)

    async def delete(self, key: str) -> bool:
        return bool(await asyncio.to_thread(self._cache.delete, key))

    async def ping(self) -> bool:
        await asyncio.to_thread(self._cache.get, "__ping__")
        return True

    async def aclose(self) -> None:
        self._cache.close()


def default_store_url() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"diskcache://{Path(base) / 'shim' / 'store'}"


def open_backend(url: str) -> KeyValue:
    parsed = urlparse(url or default_store_url())
    if parsed.scheme == "memory":
        return MemoryBackend()
    if parsed.scheme == "diskcache":
        return DiskCacheBackend(parsed.netloc + parsed.path)
    raise ValueError(f"Unknown store URL {url!r}: use memory://, diskcache:///path or redis://host:port/db")

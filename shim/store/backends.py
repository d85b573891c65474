"""Key-value backends behind one small async protocol, chosen by URL (``open_backend``).

``memory://`` for tests and one process; ``diskcache:///path`` the embedded default (one SQLite
file per directory, shared safely by several worker processes, LRU-bounded in size);
``redis://host:port/db`` (or ``rediss://``) when several replicas share one store.

Every backend keeps the same guarantees (tests/store/test_contract.py holds them to it): a value
is written whole or not at all, ``add`` and ``compare_and_set`` are atomic across every process
sharing the store, and an expired key reads exactly like a missing one.
"""

from __future__ import annotations

from typing import Protocol, TypeVar
from urllib.parse import parse_qs, urlencode, urlparse

import msgspec

from shim.settings import environment
from shim.store.diskcache_backend import DEFAULT_MAX_BYTES, DiskCacheBackend
from shim.store.memory_backend import MemoryBackend

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DiskCacheBackend",
    "KeyValue",
    "MemoryBackend",
    "decode_record",
    "default_store_url",
    "open_backend",
]


_Record = TypeVar("_Record")


def decode_record(decoder: msgspec.msgpack.Decoder[_Record], raw: bytes | None) -> _Record | None:
    """A stored record, or None: missing, or written by an incompatible version (reads as missing)."""
    if raw is None:
        return None
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError:
        return None


class KeyValue(Protocol):
    """Bytes under string keys. ``ttl`` is in seconds; ``None`` means the key never expires.

    Values (``get``/``set``/``add``/``compare_and_set``) and lists (``append``/``list_range``)
    live in separate namespaces: one key may name both, and ``delete`` removes both.
    """

    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` when missing or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` whole, replacing any previous one."""
        ...

    async def add(self, key: str, value: bytes, ttl: float | None) -> bool:
        """Set only if the key is missing (or expired); ``True`` if this call stored it.
        Atomic: of several concurrent ``add`` calls exactly one wins (claims, locks, job ids)."""
        ...

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        """Replace the value only if it currently equals ``expected`` (``None``: the key is missing);
        ``True`` if replaced. Atomic, for state transitions such as ``queued`` -> ``in_progress``
        -> ``completed`` racing a ``cancelled`` written by another replica."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the key's value and list; ``True`` if either was there."""
        ...

    async def append(self, key: str, value: bytes, ttl: float | None) -> int:
        """Append to the list under ``key`` (created when missing) and return its new length.
        ``ttl`` applies to the whole list and is renewed by every append."""
        ...

    async def list_range(self, key: str, start: int = 0, stop: int | None = None) -> list[bytes]:
        """Items ``start`` up to (not including) ``stop``, as Python slices count (no negatives);
        ``[]`` for a missing list. Cursor pagination over an event log reads this way."""
        ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


def default_store_url() -> str:
    """diskcache under the shim's data directory (``shim.settings.Environment.data_dir``)."""
    return f"diskcache://{environment().data_dir / 'store'}"


STORE_URL_FORMS = "none, memory://, diskcache:///path or redis://host:port/db"


def check_store_url(url: str) -> str:
    """The scheme of a store URL, or a ValueError saying what is allowed (no IO: checked at start)."""
    parsed = urlparse(url or default_store_url())
    if url == "none":
        return "none"
    if parsed.scheme == "diskcache" and not parsed.netloc + parsed.path:
        raise ValueError(f"Store URL {url!r} names no directory: use diskcache:///absolute/path")
    if parsed.scheme not in ("memory", "diskcache", "redis", "rediss", "unix"):
        raise ValueError(f"Unknown store URL {url!r}: use {STORE_URL_FORMS}")
    return parsed.scheme


def open_backend(url: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> KeyValue:
    """The backend a store URL names. ``max_bytes`` bounds diskcache (LRU eviction beyond it);
    Redis is bounded by its own ``maxmemory`` and ``maxmemory-policy`` (see docs/store.md)."""
    url = url or default_store_url()
    parsed = urlparse(url)
    scheme = check_store_url(url)
    if scheme == "memory":
        return MemoryBackend()
    if scheme == "diskcache":
        return DiskCacheBackend(parsed.netloc + parsed.path, max_bytes=max_bytes)
    if scheme in ("redis", "rediss", "unix"):
        from shim.store.redis_backend import DEFAULT_PREFIX, RedisBackend

        query = parse_qs(parsed.query)
        prefix = query.pop("prefix", [DEFAULT_PREFIX])[-1]
        return RedisBackend(parsed._replace(query=urlencode(query, doseq=True)).geturl(), prefix=prefix)
    raise ValueError(f"Unknown store URL {url!r}: use memory://, diskcache:///path or redis://host:port/db")

"""``memory://``: one process's dicts. For tests and throwaway single-process servers.

Every method completes without awaiting anything, so on one event loop each call is atomic.
"""

from __future__ import annotations

import time
from typing import TypeVar

__all__ = ["MemoryBackend"]

T = TypeVar("T")


def _deadline(ttl: float | None) -> float | None:
    return time.monotonic() + ttl if ttl is not None else None


def _live(table: dict[str, tuple[T, float | None]], key: str) -> T | None:
    hit = table.get(key)
    if hit is None:
        return None
    value, expires = hit
    if expires is not None and expires <= time.monotonic():
        del table[key]
        return None
    return value


class MemoryBackend:
    def __init__(self) -> None:
        self._values: dict[str, tuple[bytes, float | None]] = {}
        self._lists: dict[str, tuple[list[bytes], float | None]] = {}

    async def get(self, key: str) -> bytes | None:
        return _live(self._values, key)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._values[key] = (bytes(value), _deadline(ttl))

    async def add(self, key: str, value: bytes, ttl: float | None) -> bool:
        if _live(self._values, key) is not None:
            return False
        self._values[key] = (bytes(value), _deadline(ttl))
        return True

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        if _live(self._values, key) != expected:
            return False
        self._values[key] = (bytes(value), _deadline(ttl))
        return True

    async def delete(self, key: str) -> bool:
        had_value = _live(self._values, key) is not None
        had_list = _live(self._lists, key) is not None
        self._values.pop(key, None)
        self._lists.pop(key, None)
        return had_value or had_list

    async def append(self, key: str, value: bytes, ttl: float | None) -> int:
        items = [*(_live(self._lists, key) or []), bytes(value)]
        self._lists[key] = (items, _deadline(ttl))
        return len(items)

    async def list_range(self, key: str, start: int = 0, stop: int | None = None) -> list[bytes]:
        return list((_live(self._lists, key) or [])[start:stop])

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._values.clear()
        self._lists.clear()

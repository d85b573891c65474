"""Id and clock factories, injected into translators so they stay deterministic and sans-IO."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "CountingIds", "IdFactory", "RandomIds", "fixed_clock", "random_hex", "system_clock"]

Clock = Callable[[], int]


class IdFactory(Protocol):
    def __call__(self, prefix: str) -> str: ...


class _Pool:
    """``os.urandom`` read 4 KiB at a time and handed out in slices: one ``getrandom`` system
    call per ~170 ids instead of one each (three a request; ~0.9 us each on this project's VMs,
    bench/README.md issue 18). The same bytes, from the same source, each handed out once: a
    lock for threads, and a forked child starts empty (it must not repeat its parent's ids)."""

    _SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            at = self._at
            if at + n > len(self._data):
                self._data, at = os.urandom(max(self._SIZE, n)), 0
            self._at = at + n
            return self._data[at : at + n]

    def forget(self) -> None:
        self._lock = threading.Lock()  # (a lock held by another thread at the fork stays held)
        self._data, self._at = b"", 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


def random_hex(n: int) -> str:
    """``n`` random bytes (``os.urandom``'s) as ``2 * n`` hex digits."""
    return _pool.take(n).hex()


class RandomIds:
    """OpenAI-shaped ids: a prefix and 48 hex digits of randomness."""

    def __call__(self, prefix: str) -> str:
        return f"{prefix}_{random_hex(24)}"


class CountingIds:
    """Deterministic ids for tests and fixtures: ``msg_0001``, ``fc_0002``…"""

    def __init__(self) -> None:
        self._n = 0

    def __call__(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n:04d}"


def system_clock() -> int:
    return int(time.time())


def fixed_clock(value: int = 1_700_000_000) -> Clock:
    return lambda: value

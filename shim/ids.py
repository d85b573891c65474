"""Id and clock factories, injected into translators so they stay deterministic and sans-IO."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "CountingIds", "IdFactory", "RandomIds", "fixed_clock", "system_clock"]

Clock = Callable[[], int]


class IdFactory(Protocol):
    def __call__(self, prefix: str) -> str: ...


class RandomIds:
    """OpenAI-shaped ids: a prefix and 48 hex digits of randomness."""

    def __call__(self, prefix: str) -> str:
        return f"{prefix}_{os.urandom(24).hex()}"


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

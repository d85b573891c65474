"""The one error a backend raises when the store itself fails (Redis down, disk full, a lock
held past its timeout): a 503 ``store_unavailable`` in the OpenAI envelope, never a crash page.

The message names the failure's kind only: a backend's own message may carry its URL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from shim.errors import ShimError

__all__ = ["StoreUnavailable", "store_failures"]

log = logging.getLogger("shim.store")


class StoreUnavailable(ShimError):
    status = 503
    type = "server_error"
    default_code = "store_unavailable"


@contextmanager
def store_failures(backend: str, *kinds: type[BaseException]) -> Iterator[None]:
    """Turn ``kinds`` of exception raised inside the block into ``StoreUnavailable``."""
    try:
        yield
    except kinds as exc:
        log.warning("%s store failed: %r", backend, exc)
        raise StoreUnavailable(
            f"The response store is unavailable ({backend}: {type(exc).__name__}); try again later."
        ) from exc

"""The one pump: an open upstream answer → a translation → batches for the client.

Every streamed turn, whatever its route combination, is this loop; the turn modules only say
how bytes are translated (a ``Translation``) and what is remembered at the end. The pump owns:

- **keep-alive**: ``None`` after each ``keepalive`` seconds of upstream silence (HTTP writes an
  SSE comment; WebSocket sends nothing);
- **idle and total time**: ``idle`` seconds of silence end the answer as ``upstream_timeout``;
  the total-time and size limits are the upstream client's and arrive here as tree errors;
- **failure mapping**: whatever ends the answer early becomes one ``UpstreamError``
  (``as_upstream_error``, counted once), which the translation renders in its format;
- **redaction**: every batch, failures included, goes through the route's ``Redactor``;
- **store-on-finish**: ``on_finish`` runs once the translation finished and before its last
  batch goes out, so a client may continue the chain the moment it sees the terminal event. If
  it fails (the store is down), the translation turns that last batch into a well-formed
  failure (``Translation.unstored``): the stream is never cut (docs/store.md, "Failures");
- **disconnect cleanup**: closing the iterator early (the client went away) closes the upstream
  answer at once and runs no ``on_finish``: nothing is stored for an answer nobody received.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx

from shim.errors import ShimError, UpstreamError
from shim.turns.keepalive import with_keepalive
from shim.upstream.errors import STREAM_FAILURES, as_upstream_error
from shim.upstream.redaction import Redactor

__all__ = ["Timing", "Translation", "pump"]

log = logging.getLogger("shim")

T = TypeVar("T")


class Translation(Protocol[T]):
    """Upstream bytes in, client items out (events, chunks or bytes); sans-IO."""

    def start(self) -> list[T]:
        """What the client gets before the upstream's first byte."""
        ...

    def feed(self, data: bytes) -> list[T]: ...

    def finish(self) -> list[T]:
        """The upstream's bytes ended (a missing terminal event is the translation's to judge)."""
        ...

    def fail(self, error: UpstreamError) -> list[T]:
        """The answer ended early: ``error`` rendered in the client's format, terminally."""
        ...

    def unstored(self, tail: list[T], error: ShimError) -> list[T]:
        """``tail`` (the last batch) turned into a failure: the finished answer was not stored."""
        ...

    @property
    def stopped(self) -> bool:
        """No more upstream bytes are wanted (a stop sequence matched, an in-band error)."""
        ...


@dataclass(frozen=True)
class Timing:
    keepalive: float = 15.0  # seconds of upstream silence between keep-alive moments
    idle: float = 300.0  # seconds of upstream silence that end the answer


async def pump(
    upstream: httpx.Response,
    translation: Translation[T],
    timing: Timing,
    redactor: Redactor[T],
    *,
    on_finish: Callable[[], Awaitable[None]] | None = None,
    decoded: bool = False,
) -> AsyncIterator[list[T] | None]:
    """Batches for the client, none empty; ``None`` marks a keep-alive moment. ``decoded``: read
    the body with its content-encoding undone (a whole answer replayed as a stream)."""
    try:
        first = redactor(translation.start())
        if first:
            yield first
        source = upstream.aiter_bytes() if decoded else upstream.aiter_raw()
        try:
            async for data in with_keepalive(source, timing.keepalive, timing.idle):
                if data is None:
                    yield None
                    continue
                batch = translation.feed(data)
                if batch:
                    batch = redactor(batch)
                    if batch:
                        yield batch
                if translation.stopped:
                    await upstream.aclose()  # the upstream may stop generating now
                    break
            tail = translation.finish()
        except STREAM_FAILURES as exc:
            tail = translation.fail(as_upstream_error(exc))
        if on_finish is not None:
            try:
                await on_finish()
            except ShimError as exc:  # the store failed after the upstream did the work
                log.warning("a finished answer could not be stored: %s", exc.message)
                tail = translation.unstored(tail, exc)
        tail = redactor(tail) + redactor.flush()
        if tail:
            yield tail
    finally:
        await upstream.aclose()

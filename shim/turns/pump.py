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

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx

from shim.errors import ShimError, UpstreamError
from shim.turns.keepalive import with_keepalive
from shim.upstream.errors import STREAM_FAILURES, as_upstream_error
from shim.upstream.redaction import Redactor

__all__ = ["Last", "Timing", "Translation", "pump"]

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


class Last(list[T]):
    """The last batch of a stream (``pump(..., last=True)``): nothing follows it, so a writer may
    send it together with the stream's end."""

    __slots__ = ()


async def pump(
    upstream: httpx.Response,
    translation: Translation[T],
    timing: Timing,
    redactor: Redactor[T],
    *,
    on_finish: Callable[[], Awaitable[None]] | None = None,
    decoded: bool = False,
    last: bool = False,
) -> AsyncIterator[list[T] | None]:
    """Batches for the client, none empty; ``None`` marks a keep-alive moment. ``decoded``: read
    the body with its content-encoding undone (a whole answer replayed as a stream). ``last``:
    the final batch comes as a ``Last`` (for a caller whose stream ends with the pump's).

    Coalescing: while the upstream's next bytes (or its end) are here already, their events
    join the batch before it goes out, so a burst of upstream chunks is one message to the
    client, not one per read (each costs the ASGI send chain and a socket write). A batch is
    never held while a read could wait, nor while the store is written."""
    ready = None if decoded else getattr(upstream.stream, "ready", None)
    try:
        held = redactor(translation.start())
        if held and not (ready is not None and ready()):
            yield held
            held = []
        source = upstream.aiter_bytes() if decoded else upstream.aiter_raw()
        try:
            async for data in with_keepalive(source, timing.keepalive, timing.idle, ready):
                if data is None:
                    if held:  # (a read found nothing after all: what was held goes first)
                        yield held
                        held = []
                    yield None
                    continue
                batch = translation.feed(data)
                if batch:
                    batch = redactor(batch)
                    if batch:
                        held = held + batch if held else batch
                if translation.stopped:
                    await upstream.aclose()  # the upstream may stop generating now
                    break
                if held and not (ready is not None and ready()):
                    yield held
                    held = []
            tail = translation.finish()
        except STREAM_FAILURES as exc:
            tail = translation.fail(as_upstream_error(exc))
        if on_finish is not None:
            if held:  # the store may take a while: what is ready goes out first
                yield held
                held = []
                # and the other streams' ready work runs before this one's end (an answer that
                # came whole would otherwise hold the loop from its start to its end: measured,
                # 16 clients on 200-chunk bursts, first text delta p50 +25% without this turn)
                await asyncio.sleep(0)
            try:
                await on_finish()
            except ShimError as exc:  # the store failed after the upstream did the work
                log.warning("a finished answer could not be stored: %s", exc.message)
                tail = translation.unstored(tail, exc)
        tail = redactor(tail) + redactor.flush()
        if held:
            tail = held + tail
        if tail:
            yield Last(tail) if last else tail
    finally:
        await upstream.aclose()

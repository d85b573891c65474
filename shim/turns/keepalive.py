"""Upstream bytes with keep-alive ticks and an idle timeout: what every streaming handler reads.

The upstream read runs as a future that outlives each wait, so a keep-alive tick never cancels it:
cancelling an httpx body iterator mid-read would end it for good. (A one-slot queue fed by a
single reader task was measured as an alternative: 9.1 µs per chunk either way, so the simpler
design stays.) The wait is a bare future woken by the read or by a timer, not ``asyncio.wait``:
that one keeps two coroutines, three sets and a closure per open stream while it waits, about a
kilobyte of every idle stream's memory (bench/README.md, "memory per open stream").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from functools import partial

__all__ = ["with_keepalive"]


def _wake(waiter: asyncio.Future[None], *_: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def with_keepalive(
    source: AsyncIterator[bytes],
    interval: float,
    idle: float = float("inf"),
    ready: Callable[[], bool] | None = None,
) -> AsyncIterator[bytes | None]:
    """Pass chunks through; yield ``None`` each ``interval`` seconds of upstream silence, and
    raise ``TimeoutError`` once the silence has lasted ``idle`` seconds. ``ready``: whether the
    source's next chunk (or its end) is here already; such a read is awaited in place, without
    a task, a timer and a waiter (on a stream whose chunks come in bursts, most reads)."""
    loop = asyncio.get_running_loop()
    iterator = source.__aiter__()
    pending: asyncio.Future[bytes] | None = None
    last = loop.time()
    try:
        while True:
            if pending is None and ready is not None and ready():
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    return
                last = loop.time()
                yield chunk
                continue
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            left = last + idle - loop.time()
            if left <= 0:
                raise TimeoutError(f"no upstream data for {idle} seconds")
            if not pending.done():
                waiter: asyncio.Future[None] = loop.create_future()
                wake = partial(_wake, waiter)
                timer = loop.call_later(min(interval, left), wake)
                pending.add_done_callback(wake)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    pending.remove_done_callback(wake)
                if not pending.done():
                    if loop.time() - last < idle:
                        yield None
                    continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                pending = None
                return
            pending = None
            last = loop.time()
            yield chunk
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
        else:
            # Closed while the source sat at a yield (the client left): close it now. Left to the
            # garbage collector it would hold the upstream response, its buffers and connection
            # object until a full collection (found with bench/memtrace.py; tests/ops/test_stream_release.py).
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()

"""A stream the client leaves releases its upstream side at once, not at the next garbage
collection: the upstream body iterator is closed when the keep-alive wrapper around it is.

Found with ``bench/memtrace.py`` during the soak: the iterators of hung-up streams (and the
response, buffers and connection object they hold) stayed alive until a full collection.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest

from shim.turns.keepalive import with_keepalive


class Source:
    def __init__(self) -> None:
        self.closed = False

    async def chunks(self, pause: float) -> AsyncIterator[bytes]:
        try:
            for n in range(100):
                await asyncio.sleep(pause)
                yield b"chunk %d" % n
        finally:
            self.closed = True


@pytest.mark.parametrize("pause", [0.0, 0.05], ids=["at-a-yield", "waiting-for-data"])
async def test_leaving_a_stream_closes_its_source_at_once(pause: float) -> None:
    source = Source()
    stream = with_keepalive(source.chunks(pause), interval=0.01)
    gc.disable()  # only an explicit close may close the source
    try:
        chunk = None
        while chunk is None:  # past the keep-alive ticks, to the first real chunk
            chunk = await anext(stream)
        assert chunk == b"chunk 0"
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.sleep(0)  # a cancelled read finishes on the next turn of the loop
        assert source.closed
    finally:
        gc.enable()

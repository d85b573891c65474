"""``shim.turns.pump``: upstream chunks that are here already go out in one batch, and nothing that
could go out now waits for a read (issue 18, streams).

The upstream body is scripted: each piece either is here already when the pump asks (``ready()``
says so, as the transport's body does when aiohttp has buffered bytes) or comes after a pause.
The translation passes bytes through between a start item and an end item, so each case reads
as the batches a client would get, ``Last`` marking the one that ends the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from shim.errors import ShimError, UpstreamError
from shim.turns.pump import Last, Timing, pump
from shim.upstream.redaction import ByteRedactor

HERE = 0.0  # a piece already buffered when the pump asks


class Body(httpx.AsyncByteStream):
    """Pieces after pauses (``HERE``: buffered already); ``error`` raised after the last one."""

    def __init__(self, script: list[tuple[float, bytes]], error: Exception | None = None) -> None:
        self.script = list(script)
        self.error = error
        self.closed = False
        self._arrived = False  # the next piece (or the end) is buffered

    def ready(self) -> bool:
        if not self.script:
            return True
        return self._arrived or self.script[0][0] == HERE

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.script:
            pause, piece = self.script[0]
            if pause != HERE and not self._arrived:
                await asyncio.sleep(pause)
            self.script.pop(0)
            self._arrived = False
            yield piece
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        self.closed = True


class Passed:
    """Bytes through, between ``start`` and ``end`` items; ``fail`` renders the error."""

    stopped = False

    def start(self) -> list[bytes]:
        return [b"start"]

    def feed(self, data: bytes) -> list[bytes]:
        return [data]

    def finish(self) -> list[bytes]:
        return [b"end"]

    def fail(self, error: UpstreamError) -> list[bytes]:
        return [b"failed: " + error.code.encode()]

    def unstored(self, tail: list[bytes], error: ShimError) -> list[bytes]:
        return [b"unstored"]


@dataclass
class Case:
    id: str
    script: list[tuple[float, bytes]]
    batches: list[list[bytes] | None]  # ``Last`` for the one that ends the stream
    error: Exception | None = None


CASES = [
    Case(  # the whole answer in one read: one message, start to end
        "burst",
        [(HERE, b"a"), (HERE, b"b"), (HERE, b"c")],
        [Last([b"start", b"a", b"b", b"c", b"end"])],
    ),
    Case(  # paced: nothing waits for a read (the start goes out before the first byte); the
        # end, here with the last piece, goes with it
        "paced",
        [(0.01, b"a"), (0.01, b"b")],
        [[b"start"], [b"a"], Last([b"b", b"end"])],
    ),
    Case(  # a burst after a pause: the pieces here together go together
        "pause-then-burst",
        [(0.01, b"a"), (HERE, b"b"), (HERE, b"c"), (0.01, b"d")],
        [[b"start"], [b"a", b"b", b"c"], Last([b"d", b"end"])],
    ),
    Case(  # the upstream breaks mid-batch: what came, then the failure, in one message
        "error-mid-batch",
        [(HERE, b"a"), (HERE, b"b")],
        [Last([b"start", b"a", b"b", b"failed: upstream_reset"])],
        error=httpx.ReadError("reset"),
    ),
    Case(  # keep-alive moments during a silence, the held batch never behind one
        "keepalive",
        [(HERE, b"a"), (0.08, b"b")],
        [[b"start", b"a"], None, Last([b"b", b"end"])],
    ),
]


async def _batches(body: Body, *, on_finish: bool = False, log: list[str] | None = None) -> list[object]:
    response = httpx.Response(200, stream=body)

    async def finished() -> None:
        assert log is not None
        log.append("stored")

    out: list[object] = []
    timing = Timing(keepalive=0.03, idle=5.0)
    redactor = ByteRedactor(None)
    async for batch in pump(
        response, Passed(), timing, redactor, on_finish=finished if on_finish else None, last=True
    ):
        out.append(batch)
        if log is not None:
            log.append("sent")
    return out


def _runs_of_none_as_one(batches: list[object]) -> list[object]:
    out: list[object] = []
    for batch in batches:
        if batch is None and out and out[-1] is None:
            continue
        out.append(batch)
    return out


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_what_is_here_goes_together(case: Case) -> None:
    body = Body(case.script, case.error)
    got = _runs_of_none_as_one(await _batches(body))
    assert got == case.batches
    assert [type(batch) for batch in got] == [type(batch) for batch in case.batches]
    assert body.closed


async def test_a_held_batch_goes_out_before_the_store_is_written() -> None:
    """The store may take a while: what is ready is sent first, the end after the store."""
    log: list[str] = []
    got = await _batches(Body([(HERE, b"a"), (HERE, b"b")]), on_finish=True, log=log)
    assert got == [[b"start", b"a", b"b"], Last([b"end"])]
    assert log == ["sent", "stored", "sent"]


async def test_without_last_the_tail_is_a_plain_batch() -> None:
    """Callers whose stream goes on after the pump's (the hosted loop's rounds) get no ``Last``."""
    response = httpx.Response(200, stream=Body([(HERE, b"a")]))
    got = [b async for b in pump(response, Passed(), Timing(), ByteRedactor(None))]
    assert got == [[b"start", b"a", b"end"]] and type(got[0]) is list


async def test_a_client_leaving_between_batches_closes_the_upstream_and_stores_nothing() -> None:
    body = Body([(HERE, b"a"), (0.05, b"b"), (HERE, b"c")])
    stored: list[str] = []

    async def finished() -> None:
        stored.append("stored")

    response = httpx.Response(200, stream=body)
    batches = pump(response, Passed(), Timing(), ByteRedactor(None), on_finish=finished, last=True)
    assert await anext(batches) == [b"start", b"a"]
    await batches.aclose()  # the client left (``_send_stream`` closes the iterator)
    assert body.closed and stored == []

"""``shim.upstream.client._Bounded``: an answer body's total-time and size limits, with one timer
per body (issue 18) rather than an ``asyncio.timeout`` per chunk. The same table runs over the
transport's kind of body (``read_chunk`` / ``read_at_most`` coroutines) and over any other httpx
stream (a respx mock's, a recording tap's)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shim.errors import UpstreamTimeout, UpstreamTooLarge
from shim.upstream.client import _Bounded


class Scripted(httpx.AsyncByteStream):
    """Chunks after delays (seconds); ``None`` as a chunk waits forever."""

    def __init__(self, script: list[tuple[float, bytes | None]]) -> None:
        self.script = list(script)
        self.closed = False

    async def _step(self) -> bytes:
        if not self.script:
            return b""
        delay, chunk = self.script.pop(0)
        await asyncio.sleep(delay)
        if chunk is None:
            await asyncio.Event().wait()
        assert chunk is not None
        return chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self._step():
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


class Native(Scripted):
    """The transport's kind of body."""

    async def read_chunk(self) -> bytes:
        return await self._step()

    async def read_at_most(self, limit: int) -> bytes:
        data = b""
        while len(data) <= limit and (chunk := await self._step()):
            data += chunk
        return data


class Arrived(Native):
    """The transport's body, which says when it has arrived whole (then no read waits)."""

    def arrived(self) -> bool:
        return all(delay == 0 and chunk is not None for delay, chunk in self.script)

    async def _step(self) -> bytes:
        if self.script and self.script[0][0] == 0 and self.script[0][1] is not None:
            return self.script.pop(0)[1] or b""  # here already: no suspension
        return await super()._step()


KINDS = {"transport body": Native, "arrived transport body": Arrived, "any httpx stream": Scripted}


def bounded(
    kind: type[Scripted],
    script: list[tuple[float, bytes | None]],
    *,
    within: float = 5.0,
    max_bytes: int = 100,
) -> _Bounded:
    deadline = asyncio.get_running_loop().time() + within
    return _Bounded(kind(script), max_bytes, deadline)


async def chunks(body: _Bounded) -> list[bytes]:
    return [chunk async for chunk in body]


@pytest.fixture(params=KINDS.values(), ids=KINDS.keys())
def kind(request: pytest.FixtureRequest) -> type[Scripted]:
    kind: type[Scripted] = request.param
    return kind


async def test_chunks_pass_through(kind: type[Scripted]) -> None:
    body = bounded(kind, [(0, b"one"), (0.01, b"two")])
    assert await chunks(body) == [b"one", b"two"]
    assert await bounded(kind, [(0, b"one"), (0.01, b"two")]).read_all() == b"onetwo"


@pytest.mark.parametrize("whole", [False, True], ids=["chunks", "read_all"])
async def test_the_deadline_ends_a_wait_for_the_next_chunk(kind: type[Scripted], whole: bool) -> None:
    body = bounded(kind, [(0, b"one"), (0, None)], within=0.1)
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamTimeout, match="total time limit"):
        await (body.read_all() if whole else chunks(body))
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_deadline_passed_between_chunks_ends_the_next_read(kind: type[Scripted]) -> None:
    body = bounded(kind, [(0, b"one"), (0, b"two")], within=0.05)
    seen = []
    with pytest.raises(UpstreamTimeout, match="total time limit"):
        async for chunk in body:
            seen.append(chunk)
            await asyncio.sleep(0.1)  # the reader is busy as the deadline passes
    assert seen == [b"one"]


async def test_an_outside_cancellation_stays_a_cancellation(kind: type[Scripted]) -> None:
    body = bounded(kind, [(0, None)], within=5.0)
    task = asyncio.create_task(chunks(body))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_each_chunk_may_wait_in_its_own_task(kind: type[Scripted]) -> None:
    """The pump's keep-alive reads each chunk in a task of its own: the deadline cancels the
    one that is waiting."""
    body = bounded(kind, [(0, b"one"), (0, None)], within=0.1)
    iterator = body.__aiter__()
    assert await asyncio.ensure_future(iterator.__anext__()) == b"one"
    with pytest.raises(UpstreamTimeout):
        await asyncio.ensure_future(iterator.__anext__())


@pytest.mark.parametrize("whole", [False, True], ids=["chunks", "read_all"])
async def test_the_size_limit(kind: type[Scripted], whole: bool) -> None:
    body = bounded(kind, [(0, b"x" * 60), (0, b"y" * 60), (0, b"z")], max_bytes=100)
    with pytest.raises(UpstreamTooLarge, match="100 bytes"):
        await (body.read_all() if whole else chunks(body))


@pytest.mark.parametrize("how", ["read to the end", "read whole", "closed early"])
async def test_the_timer_lets_go_of_the_body(kind: type[Scripted], how: str) -> None:
    """Nothing holds the body (and so the upstream connection) until the deadline, which is
    30 minutes away by default."""
    body = bounded(kind, [(0, b"one"), (0, b"two")], within=1800.0)
    if how == "read to the end":
        await chunks(body)
    elif how == "read whole":
        await body.read_all()
    else:
        iterator = body.__aiter__()
        await iterator.__anext__()
        await body.aclose()
        await iterator.aclose()  # (what the garbage collector's hook does otherwise)
    inner = body.inner
    assert isinstance(inner, Scripted)
    assert inner.closed == (how == "closed early")
    gone = weakref.ref(body)
    del body
    gc.collect()
    assert gone() is None, "the deadline's timer still holds the body"


@pytest.mark.parametrize(
    ("kind", "script", "timers"),
    [
        (Arrived, [(0, b"one"), (0, b"two")], 0),  # here whole: reading it cannot wait
        (Arrived, [(0, b"one"), (0.01, b"two")], 1),  # the rest still to come
        (Native, [(0, b"one"), (0, b"two")], 1),  # a body that cannot tell
    ],
    ids=["arrived", "arriving", "cannot tell"],
)
async def test_a_body_read_whole_is_timed_only_when_it_may_wait(
    kind: type[Scripted],
    script: list[tuple[float, bytes | None]],
    timers: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A timer armed and cancelled costs ~4 us under uvloop (bench/README.md, issue 18)."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting(when: float, callback: Any, *args: object, **kwargs: Any) -> asyncio.TimerHandle:
        if getattr(callback, "__name__", "") == "_expire":  # the body's deadline (not a sleep)
            armed.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting)
    assert await bounded(kind, script).read_all() == b"onetwo"
    assert len(armed) == timers


@pytest.mark.parametrize("whole", [False, True], ids=["chunks", "read_all"])
async def test_an_arrived_body_is_read_even_past_its_deadline(whole: bool) -> None:
    """As before the timer was skipped: a read that does not wait is not cut short (the timer,
    due at once, could only fire at the next suspension)."""
    body = bounded(Arrived, [(0, b"one"), (0, b"two")], within=-1.0)
    assert await (body.read_all() if whole else chunks(body)) == (b"onetwo" if whole else [b"one", b"two"])


async def test_empty_chunks_of_another_stream_do_not_end_it() -> None:
    """Only the transport's ``read_chunk`` says the end with ``b""``; a generic stream ends when
    its iteration does."""
    body = bounded(Scripted, [])
    body.inner = httpx.ByteStream(b"")  # yields one empty chunk
    assert await chunks(body) == [b""]

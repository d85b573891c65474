"""``shim.upstream.client._before``: the wait for an answer's head under a deadline, by
``asyncio.timeout_at``'s rules at a lower cost (issue 18). Each case runs under both and must
end the same way: the result, the exception's type, and the task's cancellation count after."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shim.upstream.client import _before


async def _answer_after(delay: float) -> str:
    await asyncio.sleep(delay)
    return "head"


async def _fails() -> str:
    await asyncio.sleep(0)
    raise ConnectionResetError("reset")


async def _swallows_cancellation() -> str:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        return "finished anyway"
    return "never"


async def _stdlib(loop: asyncio.AbstractEventLoop, when: float, awaitable: Awaitable[str]) -> str:
    async with asyncio.timeout_at(when):
        return await awaitable


Waiter = Callable[[asyncio.AbstractEventLoop, float, Awaitable[str]], Awaitable[str]]
WAITERS: dict[str, Waiter] = {"asyncio.timeout_at": _stdlib, "_before": _before}

# (work, seconds to the deadline, seconds until an outside cancel or None)
CASES: dict[str, tuple[Callable[[], Awaitable[str]], float, float | None]] = {
    "in time": (lambda: _answer_after(0.01), 5.0, None),
    "the deadline passes": (lambda: _answer_after(10), 0.05, None),
    "the deadline has passed already": (lambda: _answer_after(10), -1.0, None),
    "its own error": (_fails, 5.0, None),
    "cancelled from outside": (lambda: _answer_after(10), 5.0, 0.05),
    "cancelled from outside as the deadline passes": (lambda: _answer_after(10), 0.05, 0.05),
    "the work swallows the deadline's cancellation": (_swallows_cancellation, 0.05, None),
}


async def _outcome(waiter: Waiter, case: str) -> tuple[str, int]:
    work, within, cancel_after = CASES[case]
    loop = asyncio.get_running_loop()

    async def call() -> tuple[Any, int]:
        task = asyncio.current_task()
        assert task is not None
        try:
            result: Any = await waiter(loop, loop.time() + within, work())
        except BaseException as exc:  # the kind is the outcome
            result = type(exc).__name__
        return result, task.cancelling()

    task = asyncio.ensure_future(call())
    if cancel_after is not None:
        loop.call_later(cancel_after, task.cancel)
    try:
        result, cancelling = await task
    except asyncio.CancelledError:
        return "cancelled task", 0
    return str(result), cancelling


@pytest.mark.parametrize("case", CASES)
async def test_the_same_outcome_as_asyncio_timeout_at(case: str) -> None:
    outcomes = {name: await _outcome(waiter, case) for name, waiter in WAITERS.items()}
    assert outcomes["_before"] == outcomes["asyncio.timeout_at"], outcomes


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("in time", ("head", 0)),
        ("the deadline passes", ("TimeoutError", 0)),
        ("its own error", ("ConnectionResetError", 0)),
        ("cancelled from outside", ("CancelledError", 1)),
        ("the work swallows the deadline's cancellation", ("finished anyway", 0)),
    ],
)
async def test_outcomes(case: str, expected: tuple[str, int]) -> None:
    assert await _outcome(_before, case) == expected


@pytest.mark.parametrize("case", ["in time", "its own error", "cancelled from outside"])
async def test_the_timer_is_cancelled_whatever_the_end(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A timer left armed would hold the task (and its request) until the deadline."""
    loop = asyncio.get_running_loop()
    handles: list[asyncio.TimerHandle] = []
    call_at = loop.call_at

    def keeping(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        handle = call_at(when, callback, *args, **kwargs)
        if type(callback).__name__ == "_Expiry":
            handles.append(handle)
        return handle

    monkeypatch.setattr(loop, "call_at", keeping)
    await _outcome(_before, case)
    assert len(handles) == 1 and handles[0].cancelled()

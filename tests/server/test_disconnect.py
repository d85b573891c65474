"""``http/disconnect.unless_client_leaves``: a JSON turn whose client hangs up is cancelled.

The end-to-end proof against the real model (its log shows it stopped) is
``tests/e2e/test_upstream_stops.py::test_client_hanging_up_on_an_unstreamed_request_stops_the_model``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shim.http.disconnect import unless_client_leaves


class _Receive:
    """An ASGI receive channel after the body: silent until ``leave()``."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def __call__(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def test_the_answer_comes_back_while_the_client_stays() -> None:
    async def work() -> str:
        await asyncio.sleep(0)
        return "answer"

    assert await unless_client_leaves(_Receive(), work()) == "answer"


async def test_the_turn_is_cancelled_when_the_client_leaves() -> None:
    receive = _Receive()
    cancelled = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.sleep(60)  # an upstream generating for a long time
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async def leave_soon() -> None:
        await asyncio.sleep(0.05)
        receive.gone.set()

    leaving = asyncio.ensure_future(leave_soon())
    assert await asyncio.wait_for(unless_client_leaves(receive, work()), 5) is None
    await leaving
    assert cancelled.is_set()


async def test_the_turns_own_error_still_reaches_the_client() -> None:
    async def work() -> str:
        raise ValueError("upstream said no")

    with pytest.raises(ValueError, match="upstream said no"):
        await unless_client_leaves(_Receive(), work())


async def test_a_handler_cancelled_from_outside_stays_cancelled() -> None:
    """Shutdown cancels the handler: the cancellation goes on (it is not mistaken for the client
    leaving), and the watcher goes with it."""
    started = asyncio.Event()
    before = asyncio.all_tasks()

    async def work() -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    handler = asyncio.ensure_future(unless_client_leaves(_Receive(), work()))
    await started.wait()
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before, "no watcher left behind"


async def test_a_turn_that_swallows_the_cancel_still_answers_nobody() -> None:
    receive = _Receive()

    async def work() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "finished anyway"
        return "never"

    async def leave_soon() -> None:
        await asyncio.sleep(0.05)
        receive.gone.set()

    leaving = asyncio.ensure_future(leave_soon())
    assert await asyncio.wait_for(unless_client_leaves(receive, work()), 5) is None
    await leaving
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0, "the task is not left cancelling"


async def test_the_turn_runs_in_the_callers_context() -> None:
    """The turn reports into the request's record (``shim.telemetry``) from the calling task."""
    outer = asyncio.current_task()

    async def work() -> object:
        return asyncio.current_task()

    assert await unless_client_leaves(_Receive(), work()) is outer


class _Script:
    """A receive channel that says each of ``messages`` in turn (a message object is returned, an
    exception raised), then is silent."""

    def __init__(self, *messages: dict[str, Any] | BaseException) -> None:
        self.messages = list(messages)

    async def __call__(self) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        if not self.messages:
            await asyncio.Event().wait()
        message = self.messages.pop(0)
        if isinstance(message, BaseException):
            raise message
        return message


async def _long_turn() -> str:
    await asyncio.sleep(60)
    return "never"


@pytest.mark.parametrize(
    "receive",
    [
        _Script({"type": "http.disconnect"}),
        _Script({"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}),
        _Script(ConnectionResetError("the channel broke")),
    ],
    ids=["disconnect", "another message, then the disconnect", "receive fails"],
)
async def test_what_ends_the_turn(receive: _Script) -> None:
    assert await asyncio.wait_for(unless_client_leaves(receive, _long_turn()), 5) is None
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_a_disconnect_heard_as_the_turn_ends_answers_nobody() -> None:
    """The watcher finished in the same loop turn as the work (its callback not run yet)."""
    receive = _Receive()

    async def work() -> str:
        receive.gone.set()  # the watcher's wait ends now; its callback comes later
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "answer"

    assert await unless_client_leaves(receive, work()) is None
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_the_watcher_goes_with_the_turn() -> None:
    before = asyncio.all_tasks()

    async def work() -> str:
        await asyncio.sleep(0)
        return "answer"

    assert await unless_client_leaves(_Receive(), work()) == "answer"
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before, "no watcher left behind"


# The same watcher serves a streamed answer (``hot_routes._send_stream``).


class _Chunks:
    """An endless stream of chunks that notes whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        await asyncio.sleep(0.001)
        return b"chunk"

    async def aclose(self) -> None:
        self.closed = True


async def _stream(receive: Any, chunks: _Chunks, sent: list[dict[str, Any]]) -> None:
    from litestar.response import Stream

    from shim.http.hot_routes import _send_stream

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await _send_stream(Stream(chunks, media_type="text/event-stream"), 200, receive, send)


@pytest.mark.parametrize(
    "receive",
    [
        _Script({"type": "http.disconnect"}),
        _Script({"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}),
        _Script(ConnectionResetError("the channel broke")),
    ],
    ids=["disconnect", "another message, then the disconnect", "receive fails"],
)
async def test_what_ends_a_stream(receive: _Script) -> None:
    """The stream stops quietly, unfinished, its iterator closed at once; no watcher is left."""
    before = asyncio.all_tasks()
    chunks, sent = _Chunks(), []
    await asyncio.wait_for(_stream(receive, chunks, sent), 5)
    assert chunks.closed
    assert sent[0]["type"] == "http.response.start"
    assert all(m.get("more_body") for m in sent[1:]), "no last body message: the answer is unfinished"
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


async def test_a_stream_cancelled_from_outside_stays_cancelled() -> None:
    """A shutdown's cancellation is not the client leaving: it goes on up."""
    chunks, sent = _Chunks(), []
    task = asyncio.create_task(_stream(_Receive(), chunks, sent))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert chunks.closed


# Where the server offers ``shim.on_disconnect`` (``shim serve``'s protocol: ``http/corked.py``),
# the watcher is its callback: no task waits on ``receive``.


class _Listen:
    """A server's ``listen`` extension: ``leave()`` calls back what is listening."""

    def __init__(self, gone: bool = False) -> None:
        self.callback: Any = None
        self.calls: list[bool] = []  # True: a callback given; False: taken back
        self.gone = gone

    def __call__(self, callback: Any) -> None:
        self.calls.append(callback is not None)
        self.callback = callback
        if callback is not None and self.gone:
            self.leave()

    def leave(self) -> None:
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


class _Silent:
    """A ``receive`` that must not be called: the listener stands in for it."""

    async def __call__(self) -> dict[str, Any]:
        raise AssertionError("receive was called")


async def test_with_a_listener_the_answer_comes_back_and_no_task_waits() -> None:
    listen = _Listen()
    before = asyncio.all_tasks()
    during: list[set[asyncio.Task[Any]]] = []

    async def work() -> str:
        await asyncio.sleep(0)
        during.append(asyncio.all_tasks())
        return "answer"

    assert await unless_client_leaves(_Silent(), work(), listen) == "answer"
    assert during == [before], "no watcher task"
    assert listen.calls == [True, False], "listened, then taken back"


@pytest.mark.parametrize("gone", [False, True], ids=["leaves during the turn", "gone before it"])
async def test_with_a_listener_the_turn_is_cancelled_when_the_client_leaves(gone: bool) -> None:
    listen = _Listen(gone=gone)
    cancelled = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    loop = asyncio.get_running_loop()
    leaving = loop.call_later(0.05, listen.leave)
    assert await asyncio.wait_for(unless_client_leaves(_Silent(), work(), listen), 5) is None
    leaving.cancel()
    assert cancelled.is_set()
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_with_a_listener_a_handler_cancelled_from_outside_stays_cancelled() -> None:
    listen = _Listen()
    started = asyncio.Event()

    async def work() -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    handler = asyncio.ensure_future(unless_client_leaves(_Silent(), work(), listen))
    await started.wait()
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler
    assert listen.calls == [True, False]


async def test_with_a_listener_a_stream_stops_when_the_client_leaves() -> None:
    from litestar.response import Stream

    from shim.http.hot_routes import _send_stream

    listen, chunks, sent = _Listen(), _Chunks(), []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if len(sent) == 3:
            listen.leave()

    response = Stream(chunks, media_type="text/event-stream")
    await asyncio.wait_for(_send_stream(response, 200, _Silent(), send, listen), 5)
    assert chunks.closed
    assert len(sent) == 3 and all(m.get("more_body") for m in sent[1:]), "unfinished"
    assert listen.calls == [True, False]
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0

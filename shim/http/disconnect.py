"""A JSON answer whose client hangs up stops its upstream work.

A streamed answer notices a closed connection when it next writes; an unstreamed one would only
notice when it finally answers, after the upstream generated every token for nobody (issue 17: a
400-token request ran to its end on the embedded llama). ``unless_client_leaves`` runs the turn
beside a watcher on the ASGI ``receive`` channel, which after the body says nothing until
``http.disconnect``; a disconnect cancels the turn, closing its upstream connection (with a
``stream_to_cancel`` dialect the turn goes upstream streamed, so the server really stops).
Nothing is stored for a cancelled turn: no client holds its id.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable
from typing import TypeVar

from litestar import Response

from shim.http.guards import Message, Receive

__all__ = ["CLIENT_CLOSED", "LISTEN", "Listen", "Watch", "client_left", "unless_client_leaves"]

T = TypeVar("T")

# A request's scope extension, offered by ``shim serve``'s protocol (``http/corked.py``):
# ``listen(callback)`` has ``callback()`` called when the server hears the client leave, at the
# moment a ``receive`` waiting after the body would hear ``http.disconnect`` (at once if it would
# answer so now); ``listen(None)`` takes it back. No task waits on ``receive`` then.
LISTEN = "shim.on_disconnect"
Listen = Callable[[Callable[[], None] | None], None]

# nginx's "client closed request": what the access log and metrics show for such a turn.
CLIENT_CLOSED = 499


class Watch:
    """The one watcher of a client, for a JSON answer (``unless_client_leaves``) and a streamed
    one (``hot_routes._send_stream``): the server's ``listen`` extension where it offers one (a
    callback, ~5 µs a request less than a task: bench/README.md, issue 18), else a task on
    ``receive`` alone (no coroutine of ours around it), heard through a done callback; either is
    taken back when the answer ends first. A disconnect, or a ``receive`` that fails, cancels
    ``task``; ``answers_nobody`` then tells that cancellation from one from outside."""

    __slots__ = ("cancelled", "left", "listen", "loop", "receive", "stopped", "task", "watcher")

    def __init__(self, task: asyncio.Task[object], receive: Receive, listen: Listen | None = None) -> None:
        self.task = task
        self.loop = task.get_loop()
        self.receive = receive
        self.left = False
        self.cancelled = False  # the task, by us
        self.stopped = False
        self.listen = listen
        self.watcher: asyncio.Future[Message] | None = None
        if listen is None:
            self.watcher = self._listen()
        else:
            listen(self._left)

    def _listen(self) -> asyncio.Future[Message]:
        heard = self.receive()
        watcher = (
            self.loop.create_task(heard)
            if isinstance(heard, types.CoroutineType)
            else asyncio.ensure_future(heard, loop=self.loop)
        )
        watcher.add_done_callback(self._heard)
        return watcher

    @staticmethod
    def _gone(watcher: asyncio.Future[Message]) -> bool:
        """A disconnect, or a ``receive`` that failed (that ends the turn too)."""
        if watcher.cancelled():
            return False
        return watcher.exception() is not None or watcher.result()["type"] == "http.disconnect"

    def _heard(self, watcher: asyncio.Future[Message]) -> None:
        if self.stopped or watcher.cancelled():
            return
        if not self._gone(watcher):
            self.watcher = self._listen()  # another message: still listening for the disconnect
            return
        self.left = self.cancelled = True
        self.task.cancel()

    def _left(self) -> None:
        """The server heard the client leave (``listen``'s callback)."""
        if not self.stopped:
            self.left = self.cancelled = True
            self.task.cancel()

    def stop(self) -> None:
        """The turn ended: the watcher goes. One that heard the client leave meanwhile counts,
        even if its callback has not run yet."""
        self.stopped = True
        watcher = self.watcher
        if watcher is None:
            if self.listen is not None:
                self.listen(None)
                self.listen = None
            return
        if not watcher.done():
            watcher.remove_done_callback(self._heard)
            watcher.cancel()
        elif not self.left and self._gone(watcher):
            self.left = True  # (the task not cancelled: nothing to take back)

    def answers_nobody(self) -> bool:
        """The client left, and nobody else cancelled the task meanwhile (the count of its
        cancellations, ours taken back, says so)."""
        if not self.left:
            return False
        if self.cancelled:
            return self.task.uncancel() == 0
        return self.task.cancelling() == 0


async def unless_client_leaves(
    receive: Receive, work: Awaitable[T], listen: Listen | None = None
) -> T | None:
    """``work``'s result, or ``None`` once the client has gone (``work`` is then cancelled);
    ``listen``: the request's ``LISTEN`` extension, if the server offers it (``Call.listen``).

    ``work`` runs in the calling task; only the watcher gets a task of its own, on ``receive``
    itself (a second task and ``asyncio.wait`` cost ~8 µs a request; two coroutines of ours
    around ``receive`` ~9,000 instructions: bench/README.md, issue 18). A disconnect cancels
    the calling task;
    ``Task.uncancel``'s count tells that cancellation from one from outside (the handler
    cancelled at shutdown: it goes on), as ``asyncio.timeout`` does."""
    task = asyncio.current_task()
    assert task is not None, "called from a task"
    watch = Watch(task, receive, listen)
    try:
        result = await work
    except BaseException:
        watch.stop()
        # whatever the turn raises while it is torn down concerns nobody: its client is gone
        if watch.answers_nobody():
            return None
        raise
    watch.stop()
    if watch.answers_nobody():
        return None  # the client left as the turn ended (and the turn swallowed the cancellation)
    return result


def client_left() -> Response[bytes]:
    """The answer to nobody, for the access log."""
    return Response(content=b"", status_code=CLIENT_CLOSED)

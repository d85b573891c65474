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
from collections.abc import Awaitable
from typing import TypeVar

from litestar import Response

from shim.http.guards import Receive

__all__ = ["CLIENT_CLOSED", "client_left", "disconnected", "unless_client_leaves"]

T = TypeVar("T")

# nginx's "client closed request": what the access log and metrics show for such a turn.
CLIENT_CLOSED = 499


async def disconnected(receive: Receive) -> None:
    """Returns once ``receive`` says ``http.disconnect`` (the body already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(receive: Receive, work: Awaitable[T]) -> T | None:
    """``work``'s result, or ``None`` once the client has gone (``work`` is then cancelled).

    ``work`` runs in the calling task; only the watcher gets a task of its own (a second task and
    ``asyncio.wait`` cost ~8 µs a request: bench/README.md, issue 18). A disconnect cancels the
    calling task; ``Task.uncancel``'s count tells that cancellation from one from outside (the
    handler cancelled at shutdown: it goes on), as ``asyncio.timeout`` does."""
    task = asyncio.current_task()
    assert task is not None, "called from a task"
    left = False

    async def watch() -> None:
        nonlocal left
        try:
            await disconnected(receive)
        except asyncio.CancelledError:
            raise
        except BaseException:  # a receive that fails ends the turn too (its error stays here)
            left = True
            task.cancel()
            raise
        left = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        result = await work
    except BaseException:
        watcher.cancel()
        # whatever the turn raises while it is torn down concerns nobody: its client is gone
        if left and task.uncancel() == 0:
            return None
        raise
    watcher.cancel()
    if left and task.uncancel() == 0:
        return None  # the client left as the turn ended (and the turn swallowed the cancellation)
    return result


def client_left() -> Response[bytes]:
    """The answer to nobody, for the access log."""
    return Response(content=b"", status_code=CLIENT_CLOSED)

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
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from litestar import Request, Response

__all__ = ["CLIENT_CLOSED", "client_left", "unless_client_leaves"]

T = TypeVar("T")

# nginx's "client closed request": what the access log and metrics show for such a turn.
CLIENT_CLOSED = 499


async def _disconnected(request: Request[Any, Any, Any]) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request[Any, Any, Any], work: Awaitable[T]) -> T | None:
    """``work``'s result, or ``None`` once the client has gone (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the handler itself is cancelled (shutdown): both go with it
        task.cancel()
        watcher.cancel()
        raise
    watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    # whatever the turn raises while it is torn down concerns nobody: its client is gone
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None


def client_left() -> Response[bytes]:
    """The answer to nobody, for the access log."""
    return Response(content=b"", status_code=CLIENT_CLOSED)

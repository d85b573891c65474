"""Tiny ASGI apps for the worker supervisor's tests (shim/cli/supervisor.py), and its launcher:

    python -m tests.support.worker_apps PORT APP WORKERS [--shared]

``pid_app`` answers ``GET /`` with its process id and ``GET /slow`` with ten pieces over a
second (a request still in flight when a shutdown begins); ``failing_app`` fails its lifespan
start-up, as a worker that cannot start does. ``--shared`` gives the supervisor one socket for
all workers, as on a platform without ``SO_REUSEPORT``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from shim.cli.supervisor import Supervisor, listen

__all__ = ["failing_app", "pid_app"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _lifespan(receive: Receive, send: Send, *, fail: bool) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed" if fail else "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def pid_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send, fail=False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    if scope["path"] == "/slow":
        for piece in range(10):
            await asyncio.sleep(0.1)
            await send({"type": "http.response.body", "body": b"%d" % piece, "more_body": True})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


async def failing_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, fail=True)


def main(argv: list[str]) -> int:
    port, app, workers = int(argv[0]), argv[1], int(argv[2])
    config = uvicorn.Config(
        f"tests.support.worker_apps:{app}",
        workers=workers,
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    sockets, _ = listen("127.0.0.1", port, 1 if "--shared" in argv else workers, config.backlog)
    return Supervisor(config, sockets, workers).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

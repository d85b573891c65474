"""uvicorn's httptools protocol, writing a JSON answer's head with its body in one write.

uvicorn writes the status line and headers of an answer as soon as the app sends
``http.response.start``, then the body with the next message: two ``send`` syscalls, and two
wake-ups of the client, for every JSON answer. On this project's VMs a write that wakes a reader
on the other core costs the sender 2-5 µs of system time (bench/README.md, issue 18). The app
knows when the body follows the head at once (``hot_routes._send_bytes``): it calls the
request's ``shim.head_with_body`` extension first, and the connection's transport then holds
the head until the next write, the body, which takes it along. Nothing else changes: other
answers (streams, Litestar's) are written as uvicorn writes them, and a held head still leaves
before anything written after it, or when the connection is closed.

The protocol also offers each request the ``shim.on_disconnect`` extension (``Leaving``, read
by ``http/disconnect.Watch``): the app hears its client leave through a callback, where it
would otherwise keep a task waiting on ``receive`` for the whole answer (~5 µs a request).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from shim.http.disconnect import LISTEN

__all__ = ["EXTENSION", "CorkedHttpToolsProtocol", "HeadWithBody", "Leaving", "http_protocol"]

EXTENSION = "shim.head_with_body"  # in ``scope["extensions"]``: call it before a start + body


class HeadWithBody:
    """A connection's transport for uvicorn: after ``hold_next_head``, the next write (the
    head) waits for the one after it (the body) and both go out in one write; everything else
    is the transport's."""

    __slots__ = ("_held", "_hold", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._hold = False
        self._held: bytes | None = None

    def hold_next_head(self) -> None:
        """The app sends an answer's start and then, at once, its body."""
        self._hold = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held + data)
        elif self._hold:
            self._hold = False
            self._held = bytes(data)
        else:
            self.transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        """The held head, if any, to the transport."""
        held = self._held
        self._hold = False
        if held is not None:
            self._held = None
            if not self.transport.is_closing():
                self.transport.write(held)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + len(self._held or b"")

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()  # (a closed transport still sends what it was given first)
        self.transport.close()

    def abort(self) -> None:
        self._held = None
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class Leaving:
    """One request's ``shim.on_disconnect`` extension (``disconnect.LISTEN``): ``leaving(callback)``
    has ``callback()`` called when uvicorn marks the request's client gone, where a ``receive``
    waiting after the body would wake with ``http.disconnect`` (``connection_lost`` for the
    request's cycle); at once if that ``receive`` would answer so now. It resumes reading as that
    ``receive`` does, or the connection's end could go unread. ``leaving(None)``: no more."""

    __slots__ = ("_cycle", "callback")

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None
        # the request's cycle, once its head is read: weakly, because the cycle's scope holds this
        # object, and a strong reference made every answered request a reference cycle that only
        # the cyclic collector frees (its full collections were a one-client p99 of 2-5 ms)
        self._cycle: weakref.ref[RequestResponseCycle] | None = None

    @property
    def cycle(self) -> RequestResponseCycle | None:
        return None if self._cycle is None else self._cycle()

    @cycle.setter
    def cycle(self, cycle: RequestResponseCycle | None) -> None:
        self._cycle = None if cycle is None else weakref.ref(cycle)

    def __call__(self, callback: Callable[[], None] | None) -> None:
        self.callback = callback
        cycle = self.cycle
        if callback is None or cycle is None:
            return
        if cycle.disconnected or cycle.response_complete:
            self.heard()
        else:
            cycle.flow.resume_reading()

    def heard(self) -> None:
        callback = self.callback
        if callback is not None:
            self.callback = None
            callback()


class CorkedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over ``HeadWithBody``, its hold offered to the app as the
    ``shim.head_with_body`` extension of each HTTP request, and a ``Leaving`` as its
    ``shim.on_disconnect``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        corked = HeadWithBody(transport)
        self._hold = corked.hold_next_head
        super().connection_made(corked)  # type: ignore[arg-type]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {EXTENSION: self._hold, LISTEN: Leaving()}  # type: ignore[dict-item]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # (an upgrade makes no cycle)
            leaving = _leaving(cycle)
            if leaving is not None:
                leaving.cycle = cycle

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle  # the one uvicorn tells (its ``message_event``)
        super().connection_lost(exc)
        leaving = _leaving(cycle) if cycle is not None else None
        if leaving is not None:
            leaving.heard()


def _leaving(cycle: RequestResponseCycle) -> Leaving | None:
    extensions: Any = cycle.scope.get("extensions") or {}
    leaving = extensions.get(LISTEN)
    return leaving if isinstance(leaving, Leaving) else None


def http_protocol(choice: str) -> str:
    """uvicorn's ``http`` option for ``shim serve --http CHOICE``: this protocol where uvicorn
    would use httptools (``auto`` with httptools installed, ``httptools``), else ``CHOICE``."""
    if choice not in ("auto", "httptools"):
        return choice
    try:
        import httptools  # noqa: F401
    except ImportError:
        return choice
    return "shim.http.corked:CorkedHttpToolsProtocol"

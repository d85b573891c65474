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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["EXTENSION", "CorkedHttpToolsProtocol", "HeadWithBody", "http_protocol"]

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


class CorkedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over ``HeadWithBody``, its hold offered to the app as the
    ``shim.head_with_body`` extension of each HTTP request."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        corked = HeadWithBody(transport)
        self._hold = corked.hold_next_head
        super().connection_made(corked)  # type: ignore[arg-type]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {EXTENSION: self._hold}  # type: ignore[dict-item]


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

"""uvicorn's httptools protocol, writing an answer's head with the first bytes of its body.

uvicorn writes the status line and headers of an answer as soon as the app sends
``http.response.start``, then the body with the next message: two ``send`` syscalls, and two
wake-ups of the client, for every JSON answer. On this project's VMs a write that wakes a reader
on the other core is the dearest thing the server does per request (bench/README.md, issue 18:
the upstream POST's two writes made one cut the server's CPU per request measurably). Here the
connection's transport holds a head back until the next write on the connection, which takes
it along, or until the end of the loop turn, whichever comes first: a JSON answer's body is sent
in the same turn as its head, so both leave in one write; a stream's head goes with its first
chunk or a loop turn later. The bytes and their order are unchanged, and nothing waits for more
than one loop turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CorkedHttpToolsProtocol", "HeadWithBody", "http_protocol"]

_HEAD = b"HTTP/1.1 "  # what every head uvicorn writes starts with (its status lines)


class HeadWithBody:
    """A connection's transport for uvicorn: a write starting like a head is held until the
    next write (sent together) or the end of the loop turn; everything else is the transport's."""

    __slots__ = ("_call_soon", "_held", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._call_soon = loop.call_soon
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held + data)
        elif type(data) is bytes and data.startswith(_HEAD):
            self._held = data
            self._call_soon(self.flush)
        else:
            self.transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        """The held head, if any, to the transport."""
        held = self._held
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
    """uvicorn's httptools protocol over ``HeadWithBody`` (WebSocket upgrades included: the
    handshake's answer is a head like any other)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeadWithBody(transport, self.loop))  # type: ignore[arg-type]


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

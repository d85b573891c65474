"""Scripted raw HTTP/1.1 servers on loopback, for the transport tests: a script writes back bytes
exactly as given and hangs up when it likes; the server counts connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from shim.upstream.transport import build_transport

__all__ = ["Conn", "Script", "Server", "fetch", "ok", "transport"]

Script = Callable[["Conn"], Awaitable[None]]


@dataclass
class Conn:
    """One accepted connection, as a server script sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int  # 0 for the first connection the server accepted
    seen: list[bytes] = field(default_factory=list)  # every request the server read, in order

    async def request(self) -> bytes:
        """The next request's head and body (Content-Length or chunked); b"" at EOF."""
        head = await self.reader.readuntil(b"\r\n\r\n") if not self.reader.at_eof() else b""
        if not head:
            return b""
        lower = head.lower()
        if b"content-length:" in lower:
            length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            self.seen.append(head + await self.reader.readexactly(length))
            return self.seen[-1]
        if b"transfer-encoding: chunked" in lower:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                body += (await self.reader.readexactly(size + 2))[:-2]
                if size == 0:
                    self.seen.append(head + body)
                    return head + body
        self.seen.append(head)
        return head

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


@dataclass
class Server:
    script: Script
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(reader, writer, self.connections, self.requests)
        self.connections += 1
        try:
            await self.script(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        await self._server.wait_closed()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), extra, body)


def transport(**limits: object) -> httpx.AsyncBaseTransport:
    """What ``shim.upstream.UpstreamClient`` sends through, with these ``httpx.Limits``."""
    return build_transport(httpx.Limits(**limits))  # type: ignore[arg-type]


async def fetch(
    transport: httpx.AsyncBaseTransport,
    port: int,
    timeout: float = 5.0,
    *,
    method: str = "POST",
    host: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> bytes:
    """One request, its whole answer body read (and the answer closed)."""
    request = httpx.Request(
        method,
        f"http://{host}:{port}/v1/chat/completions",
        content=b'{"model":"m"}' if method == "POST" else None,
        headers=headers,
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    response = await transport.handle_async_request(request)
    response.request = request
    try:
        return await response.aread()
    finally:
        await response.aclose()

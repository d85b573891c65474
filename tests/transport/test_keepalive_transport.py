"""``shim.upstream.transport.KeepAliveTransport`` against scripted raw HTTP/1.1 servers.

Each case is a server script (what it writes back, byte for byte, and when it hangs up) and what
the client must see: the body, the httpx exception httpcore would have raised, and how many TCP
connections the server saw (keep-alive reuse, or not).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from shim.upstream.transport import KeepAliveTransport, fast_transport

Script = Callable[["Conn"], Awaitable[None]]


@dataclass
class Conn:
    """One accepted connection, as a server script sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int  # 0 for the first connection the server accepted

    async def request(self) -> bytes:
        """The next request's head and body (Content-Length or chunked); b"" at EOF."""
        head = await self.reader.readuntil(b"\r\n\r\n") if not self.reader.at_eof() else b""
        if not head:
            return b""
        lower = head.lower()
        if b"content-length:" in lower:
            length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            return head + await self.reader.readexactly(length)
        if b"transfer-encoding: chunked" in lower:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                body += (await self.reader.readexactly(size + 2))[:-2]
                if size == 0:
                    return head + body
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
        conn = Conn(reader, writer, self.connections)
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


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), extra, body)


def _serve_each(answer: bytes) -> Script:
    """Answer every request on the connection with ``answer``."""

    async def script(conn: Conn) -> None:
        while await conn.request():
            await conn.send(answer)

    return script


async def _chunked(conn: Conn) -> None:
    while await conn.request():
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"data: one\n\n", b"data: two\n\n"):
            await conn.send(b"%x\r\n%b\r\n" % (len(piece), piece))
            await asyncio.sleep(0.02)
        await conn.send(b"0\r\n\r\n")


async def _until_close(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")


async def _connection_close(conn: Conn) -> None:
    await conn.request()
    await conn.send(_ok(b"bye", b"connection: close\r\n"))


async def _close_after_answer(conn: Conn) -> None:
    await conn.request()
    await conn.send(_ok(b"once"))


async def _drop_second_request(conn: Conn) -> None:
    """The keep-alive race: the server closes the idle connection as the next request arrives."""
    if conn.index == 0:
        await conn.request()
        await conn.send(_ok(b"first"))
        await conn.request()
        return  # hang up without answering
    await _serve_each(_ok(b"fresh"))(conn)


async def _unsolicited_408(conn: Conn) -> None:
    """Some servers announce an idle timeout with a 408 before hanging up: it answers nothing."""
    if conn.index == 0:
        await conn.request()
        await conn.send(_ok(b"first"))
        await asyncio.sleep(0.01)
        await conn.send(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
        await conn.request()
        return
    await _serve_each(_ok(b"fresh"))(conn)


async def _short_body(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..")


async def _hang_up(conn: Conn) -> None:
    await conn.request()


async def _garbage(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"SMTP ready\r\n\r\n")


async def _silent(conn: Conn) -> None:
    await conn.request()
    await asyncio.sleep(5)


async def _stall_mid_body(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\npart\r\n")
    await asyncio.sleep(5)


async def _interim_then_final(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"final"))


_BIG = bytes(range(256)) * 20_000  # 5 MB: reading pauses and resumes many times
_GZIPPED = gzip.compress(b"squeezed " * 100)


@dataclass(frozen=True)
class Case:
    script: Script
    body: bytes | None = None  # expected body of every request
    error: type[Exception] | None = None  # or the httpx exception expected
    requests: int = 1  # sent one after another
    connections: int = 1  # the server accepted
    timeout: float = 5.0


CASES = {
    "content-length, reused": Case(_serve_each(_ok(b"hello")), b"hello", requests=3),
    "chunked, reused": Case(_chunked, b"data: one\n\ndata: two\n\n", requests=2),
    "until close": Case(_until_close, b"all of it", requests=2, connections=2),
    "connection: close honoured": Case(_connection_close, b"bye", requests=2, connections=2),
    "server closed the idle connection": Case(_close_after_answer, b"once", requests=2, connections=2),
    "keep-alive race: sent again on a fresh connection": Case(
        _drop_second_request, None, requests=2, connections=2
    ),
    "bytes on an idle connection: not reused": Case(_unsolicited_408, None, requests=2, connections=2),
    "5 MB body, flow control": Case(_serve_each(_ok(_BIG)), _BIG, requests=2),
    "gzip decoded by httpx": Case(
        _serve_each(_ok(_GZIPPED, b"content-encoding: gzip\r\n")), b"squeezed " * 100
    ),
    "interim 100 Continue skipped": Case(_interim_then_final, b"final"),
    "body cut short": Case(_short_body, error=httpx.RemoteProtocolError),
    "hang-up before answering": Case(_hang_up, error=httpx.RemoteProtocolError),
    "not HTTP": Case(_garbage, error=httpx.RemoteProtocolError),
    "no answer: read timeout": Case(_silent, error=httpx.ReadTimeout, timeout=0.2),
    "stall mid-body: read timeout": Case(_stall_mid_body, error=httpx.ReadTimeout, timeout=0.2),
}


async def _get(transport: httpx.AsyncBaseTransport, port: int, timeout: float) -> bytes:
    request = httpx.Request(
        "POST",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        content=b'{"model":"m"}',
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    response = await transport.handle_async_request(request)
    response.request = request
    try:
        return await response.aread()
    finally:
        await response.aclose()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_case(case: Case) -> None:
    transport = KeepAliveTransport()
    async with Server(case.script) as server:
        try:
            bodies = []
            for _ in range(case.requests):
                if case.error is not None:
                    with pytest.raises(case.error):
                        await _get(transport, server.port, case.timeout)
                else:
                    bodies.append(await _get(transport, server.port, case.timeout))
                    await asyncio.sleep(0.05)  # lets a server's hang-up arrive before the next request
        finally:
            await transport.aclose()
    if case.body is not None:
        assert bodies == [case.body] * case.requests
    elif case.error is None:
        assert bodies == [b"first", b"fresh"]
    assert server.connections == case.connections


async def test_connect_refused() -> None:
    async with Server(_hang_up) as server:
        port = server.port  # closed below: nothing listens there any more
    transport = KeepAliveTransport()
    with pytest.raises(httpx.ConnectError):
        await _get(transport, port, 1.0)
    await transport.aclose()


async def test_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    async def never(*_: object, **__: object) -> None:
        await asyncio.sleep(10)

    monkeypatch.setattr(loop, "create_connection", never)
    transport = KeepAliveTransport()
    with pytest.raises(httpx.ConnectTimeout):
        await _get(transport, 9, 0.1)
    await transport.aclose()


async def test_reader_stopping_early_drops_the_connection() -> None:
    async with Server(_chunked) as server:
        transport = KeepAliveTransport()
        request = httpx.Request("POST", f"http://127.0.0.1:{server.port}/", content=b"x")
        response = await transport.handle_async_request(request)
        async for piece in response.aiter_raw():
            assert piece == b"data: one\n\n"
            break
        await response.aclose()
        assert await _get(transport, server.port, 5.0) == b"data: one\n\ndata: two\n\n"
        await transport.aclose()
    assert server.connections == 2, "a half-read answer's connection is never reused"


async def test_streamed_request_body_is_chunk_encoded() -> None:
    async def echo(conn: Conn) -> None:
        request = await conn.request()
        body = request.split(b"\r\n\r\n", 1)[1]
        await conn.send(_ok(body))

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"one,", b"two,", b"three"):
            yield piece

    async with Server(echo) as server:
        transport = KeepAliveTransport()
        request = httpx.Request("POST", f"http://127.0.0.1:{server.port}/", content=pieces())
        response = await transport.handle_async_request(request)
        assert await response.aread() == b"one,two,three"
        await transport.aclose()


async def test_pool_limit_queues_then_times_out() -> None:
    release = asyncio.Event()

    async def slow(conn: Conn) -> None:
        while await conn.request():
            await release.wait()
            await conn.send(_ok(b"done"))

    async with Server(slow) as server:
        transport = KeepAliveTransport(httpx.Limits(max_connections=1))
        first = asyncio.create_task(_get(transport, server.port, 5.0))
        await asyncio.sleep(0.05)
        request = httpx.Request(
            "POST",
            f"http://127.0.0.1:{server.port}/",
            content=b"x",
            extensions={"timeout": httpx.Timeout(5.0, pool=0.1).as_dict()},
        )
        with pytest.raises(httpx.PoolTimeout):
            await transport.handle_async_request(request)
        queued = asyncio.create_task(_get(transport, server.port, 5.0))
        await asyncio.sleep(0.05)
        release.set()
        assert await first == b"done" and await queued == b"done"
        await transport.aclose()
    assert server.connections == 1, "the queued request reused the freed connection"


@pytest.mark.parametrize(
    ("env", "fast"),
    [
        pytest.param({}, True, id="default"),
        pytest.param({"SHIM_UPSTREAM_TRANSPORT": "httpx"}, False, id="asked-for-httpx"),
        pytest.param({"HTTPS_PROXY": "http://proxy:3128"}, False, id="proxy-configured"),
    ],
)
def test_fast_transport_choice(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fast: bool) -> None:
    for name in ("SHIM_UPSTREAM_TRANSPORT", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    chosen = fast_transport(httpx.Limits())
    assert isinstance(chosen, KeepAliveTransport) is fast

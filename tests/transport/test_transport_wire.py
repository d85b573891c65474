"""The upstream transport (whatever ``shim.upstream.transport.build_transport`` builds) against scripted raw
HTTP/1.1 servers.

Each case is a server script (what it writes back, byte for byte, and when it hangs up) and what
the client must see: the body, the httpx exception httpcore would have raised, and how many TCP
connections the server saw (keep-alive reuse, or not).
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.transport.scripted import Conn, Script, Server, fetch, ok, transport


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
    await conn.send(ok(b"bye", b"connection: close\r\n"))


async def _close_after_answer(conn: Conn) -> None:
    await conn.request()
    await conn.send(ok(b"once"))


async def _drop_second_request(conn: Conn) -> None:
    """The keep-alive race: the server closes the idle connection as the next request arrives
    (having read it: a client cannot know whether the server acted on it)."""
    if conn.index == 0:
        await conn.request()
        await conn.send(ok(b"first"))
        await conn.request()
        return  # hang up without answering
    await _serve_each(ok(b"fresh"))(conn)


async def _unsolicited_408(conn: Conn) -> None:
    """Some servers announce an idle timeout with a 408 before hanging up: it answers nothing."""
    if conn.index == 0:
        await conn.request()
        await conn.send(ok(b"first"))
        await asyncio.sleep(0.01)
        await conn.send(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
        await conn.request()
        return
    await _serve_each(ok(b"fresh"))(conn)


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


async def _steady_drip(conn: Conn) -> None:
    """Eight chunks 0.1 s apart: 0.8 s in all, each gap well inside a 0.3 s read timeout."""
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    for _ in range(8):
        await asyncio.sleep(0.1)
        await conn.send(b"5\r\ndrip.\r\n")
    await conn.send(b"0\r\n\r\n")


async def _drip_then_stall(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    for _ in range(4):
        await asyncio.sleep(0.1)
        await conn.send(b"5\r\ndrip.\r\n")
    await asyncio.sleep(5)


async def _interim_then_final(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final"))


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
    "content-length, reused": Case(_serve_each(ok(b"hello")), b"hello", requests=3),
    "chunked, reused": Case(_chunked, b"data: one\n\ndata: two\n\n", requests=2),
    "until close": Case(_until_close, b"all of it", requests=2, connections=2),
    "connection: close honoured": Case(_connection_close, b"bye", requests=2, connections=2),
    "server closed the idle connection": Case(_close_after_answer, b"once", requests=2, connections=2),
    "bytes on an idle connection: not reused": Case(_unsolicited_408, None, requests=2, connections=2),
    "5 MB body, flow control": Case(_serve_each(ok(_BIG)), _BIG, requests=2),
    "gzip decoded by httpx": Case(
        _serve_each(ok(_GZIPPED, b"content-encoding: gzip\r\n")), b"squeezed " * 100
    ),
    "interim 100 Continue skipped": Case(_interim_then_final, b"final"),
    "body cut short": Case(_short_body, error=httpx.RemoteProtocolError),
    "hang-up before answering": Case(_hang_up, error=httpx.RemoteProtocolError),
    "not HTTP": Case(_garbage, error=httpx.RemoteProtocolError),
    "no answer: read timeout": Case(_silent, error=httpx.ReadTimeout, timeout=0.2),
    "stall mid-body: read timeout": Case(_stall_mid_body, error=httpx.ReadTimeout, timeout=0.2),
    # the read timeout counts from the last bytes, however long the answer (its timer re-arms)
    "steady drip outlasts the read timeout": Case(_steady_drip, b"drip." * 8, timeout=0.3),
    "stall after a drip: read timeout": Case(_drip_then_stall, error=httpx.ReadTimeout, timeout=0.3),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_case(case: Case) -> None:
    client = transport()
    async with Server(case.script) as server:
        try:
            bodies = []
            for _ in range(case.requests):
                if case.error is not None:
                    with pytest.raises(case.error):
                        await fetch(client, server.port, case.timeout)
                else:
                    bodies.append(await fetch(client, server.port, case.timeout))
                    await asyncio.sleep(0.05)  # lets a server's hang-up arrive before the next request
        finally:
            await client.aclose()
    if case.body is not None:
        assert bodies == [case.body] * case.requests
    elif case.error is None:
        assert bodies == [b"first", b"fresh"]
    assert server.connections == case.connections


async def test_keep_alive_race_post_is_not_sent_again() -> None:
    """RFC 9112 §9.3.1: the server read the POST and hung up; it may have acted on it, so the
    transport reports the failure instead of sending the POST again on a fresh connection."""
    client = transport()
    async with Server(_drop_second_request) as server:
        assert await fetch(client, server.port) == b"first"
        with pytest.raises(httpx.TransportError) as caught:
            await fetch(client, server.port)
        await client.aclose()
    assert not isinstance(caught.value, httpx.ConnectError), "a connect error would be retried"
    assert server.connections == 1
    assert len(server.requests) == 2


async def test_keep_alive_race_get_is_sent_again() -> None:
    """An idempotent request may be, and is, sent again on a fresh connection."""
    client = transport()
    async with Server(_drop_second_request) as server:
        assert await fetch(client, server.port, method="GET") == b"first"
        assert await fetch(client, server.port, method="GET") == b"fresh"
        await client.aclose()
    assert server.connections == 2


async def test_connect_refused() -> None:
    async with Server(_hang_up) as server:
        port = server.port  # closed below: nothing listens there any more
    client = transport()
    with pytest.raises(httpx.ConnectError):
        await fetch(client, port, 1.0)
    await client.aclose()


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: a new connection's SYN goes unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_connect_timeout(full_backlog: int) -> None:
    client = transport()
    with pytest.raises(httpx.ConnectTimeout):
        await fetch(client, full_backlog, 0.2)
    await client.aclose()


async def test_reader_stopping_early_drops_the_connection() -> None:
    async with Server(_chunked) as server:
        client = transport()
        request = httpx.Request("POST", f"http://127.0.0.1:{server.port}/", content=b"x")
        response = await client.handle_async_request(request)
        async for piece in response.aiter_raw():
            assert piece == b"data: one\n\n"
            break
        await response.aclose()
        assert await fetch(client, server.port) == b"data: one\n\ndata: two\n\n"
        await client.aclose()
    assert server.connections == 2, "a half-read answer's connection is never reused"


async def test_streamed_request_body_is_chunk_encoded() -> None:
    async def echo(conn: Conn) -> None:
        request = await conn.request()
        body = request.split(b"\r\n\r\n", 1)[1]
        await conn.send(ok(body))

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"one,", b"two,", b"three"):
            yield piece

    async with Server(echo) as server:
        client = transport()
        request = httpx.Request("POST", f"http://127.0.0.1:{server.port}/", content=pieces())
        response = await client.handle_async_request(request)
        assert await response.aread() == b"one,two,three"
        await client.aclose()


async def test_pool_limit_queues_then_times_out() -> None:
    release = asyncio.Event()

    async def slow(conn: Conn) -> None:
        while await conn.request():
            await release.wait()
            await conn.send(ok(b"done"))

    async with Server(slow) as server:
        client = transport(max_connections=1)
        first = asyncio.create_task(fetch(client, server.port))
        await asyncio.sleep(0.05)
        request = httpx.Request(
            "POST",
            f"http://127.0.0.1:{server.port}/",
            content=b"x",
            extensions={"timeout": httpx.Timeout(5.0, pool=0.1, connect=0.1).as_dict()},
        )
        with pytest.raises(httpx.TimeoutException):  # no free connection: nothing was sent
            await client.handle_async_request(request)
        queued = asyncio.create_task(fetch(client, server.port))
        await asyncio.sleep(0.05)
        release.set()
        assert await first == b"done" and await queued == b"done"
        await client.aclose()
    assert server.connections == 1, "the queued request reused the freed connection"

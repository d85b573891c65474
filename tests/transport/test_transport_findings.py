"""Regression tests for the transport findings of issue 12 (5, 8, 9, 10, 11), generic over
whatever ``shim.upstream.transport.build_transport`` builds. Each failed against the hand-written
transport of commit deb5485."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.transport.scripted import Conn, Server, fetch, ok, transport


async def _flood_headers(conn: Conn) -> None:
    """An answer head without end: 64 MiB of header lines (what it sent is counted)."""
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\n")
    line = b"x-filler: " + b"a" * 1000 + b"\r\n"
    sent = 0
    while sent < 64 << 20:
        await conn.send(line * 64)
        sent += len(line) * 64
        conn.seen.append(b"%d" % sent)
    await conn.send(ok(b"too late"))


async def _many_headers(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\n" + b"x-small: 1\r\n" * 10_000 + b"content-length: 2\r\n\r\nok")


@pytest.mark.parametrize("script", [_flood_headers, _many_headers], ids=["64-MiB-of-headers", "10k-headers"])
async def test_finding_5_answer_head_size_is_bounded(script: object) -> None:
    client = transport()
    async with Server(script) as server:  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(httpx.RemoteProtocolError, match=r"(?i)header|line|8190"):
            await fetch(client, server.port)
        elapsed = loop.time() - started
        await client.aclose()
    assert elapsed < 2.0
    sent = [int(s) for s in server.requests[1:]]  # the flood's running total, if any
    assert not sent or sent[-1] < 16 << 20, "the client read on far past the limit"


async def _answer_then_hang_up(conn: Conn) -> None:
    await conn.request()
    await conn.send(ok(b"dead soon"))


async def test_finding_8_dead_idle_connections_do_not_turn_keep_alive_off() -> None:
    """Connections an upstream closed while idle leave the pool; they never fill the idle cap,
    so another upstream's connections are still kept alive and reused."""

    async def keep_alive(conn: Conn) -> None:
        while await conn.request():
            await conn.send(ok(b"alive"))

    client = transport(max_keepalive_connections=4)
    async with Server(_answer_then_hang_up) as dying, Server(keep_alive) as alive:
        # eight connections at once to the upstream that hangs up after each answer
        bodies = await asyncio.gather(*(fetch(client, dying.port) for _ in range(8)))
        assert bodies == [b"dead soon"] * 8
        await asyncio.sleep(0.1)  # their hang-ups arrive: eight dead idle connections
        for _ in range(100):
            assert await fetch(client, alive.port, host="localhost") == b"alive"
        await client.aclose()
    assert alive.connections <= 2, f"{alive.connections} connections for 100 sequential requests"


async def test_finding_9_a_cancelled_waiter_does_not_strand_a_free_connection() -> None:
    """One connection allowed. A holds it; B and C wait. A's answer ends and the connection is
    handed to B, which is cancelled before it runs: C must get the connection, not a PoolTimeout."""
    finish = asyncio.Event()

    async def slow_first(conn: Conn) -> None:
        while request := await conn.request():
            if b"first" in request:
                await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfi")
                await finish.wait()
                await conn.send(b"rs")
            else:
                await conn.send(ok(b"next"))

    client = transport(max_connections=1)
    async with Server(slow_first) as server:
        first = httpx.Request(
            "POST",
            f"http://127.0.0.1:{server.port}/",
            content=b"first",
            extensions={"timeout": httpx.Timeout(5.0).as_dict()},
        )
        response = await client.handle_async_request(first)
        waiting_b = asyncio.create_task(fetch(client, server.port, 1.0))
        waiting_c = asyncio.create_task(fetch(client, server.port, 1.0))
        await asyncio.sleep(0.1)  # both queued for the one connection
        finish.set()
        assert await response.aread() == b"firs"  # the connection is free: B is signalled…
        waiting_b.cancel()  # …and cancelled before it could take it
        assert await waiting_c == b"next"
        with pytest.raises(asyncio.CancelledError):
            await waiting_b
        await client.aclose()


async def _answer_plus_unsolicited(conn: Conn) -> None:
    """The first answer is followed, in the same write, by a whole answer nobody asked for."""
    if conn.index == 0:
        await conn.request()
        await conn.send(ok(b"hello") + ok(b"stray bytes"))
    while await conn.request():
        await conn.send(ok(b"second"))


async def test_finding_10_bytes_after_an_answer_are_not_part_of_it() -> None:
    client = transport()
    async with Server(_answer_plus_unsolicited) as server:
        assert await fetch(client, server.port) == b"hello"
        await asyncio.sleep(0.05)
        assert await fetch(client, server.port) == b"second", "the stray answer answered nothing"
        await client.aclose()
    assert server.connections == 2, "a connection with unread bytes on it is not reused"


async def test_finding_10_bytes_on_an_idle_connection_answer_nothing() -> None:
    async def stray_while_idle(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            await conn.send(ok(b"hello"))
            await asyncio.sleep(0.02)
            await conn.send(ok(b"stray bytes"))
        while await conn.request():
            await conn.send(ok(b"second"))

    client = transport()
    async with Server(stray_while_idle) as server:
        assert await fetch(client, server.port) == b"hello"
        await asyncio.sleep(0.1)
        assert await fetch(client, server.port) == b"second"
        await client.aclose()


@pytest.mark.parametrize("value", ["sk-abc\r\nx-injected: 1", "sk-abc\r", "sk-abc\n", "sk-\x00abc"])
async def test_finding_11_a_header_value_with_cr_lf_or_nul_is_never_sent(value: str) -> None:
    client = transport()
    async with Server(_answer_then_hang_up) as server:
        with pytest.raises(httpx.LocalProtocolError):
            await fetch(client, server.port, headers={"authorization": f"Bearer {value}"})
        await asyncio.sleep(0.05)
        await client.aclose()
    assert server.requests == [], "nothing reached the upstream"


async def test_idle_connections_are_capped_by_max_keepalive_connections() -> None:
    """After a burst, at most ``max_keepalive_connections`` connections stay open idle: the rest
    are closed as their answers end (a soak once left 375 idle connections open, uncapped), and
    the ones kept are reused."""
    open_now = 0

    async def keep_alive(conn: Conn) -> None:
        nonlocal open_now
        open_now += 1
        try:
            while await conn.request():
                await conn.send(ok(b"alive"))
        finally:
            open_now -= 1

    client = transport(max_keepalive_connections=3)
    async with Server(keep_alive) as server:
        bodies = await asyncio.gather(*(fetch(client, server.port) for _ in range(12)))
        assert bodies == [b"alive"] * 12
        assert server.connections == 12, "the burst ran on twelve connections at once"
        await asyncio.sleep(0.1)  # the closes reach the server
        assert open_now == 3
        for _ in range(10):
            assert await fetch(client, server.port) == b"alive"
        assert server.connections == 12, "the idle connections kept were reused"
        await client.aclose()


@pytest.mark.parametrize(
    ("chunks", "size"),
    [(10_000, 100), (64, 64 * 1024)],
    ids=["many-small-chunks", "few-large-chunks"],
)
async def test_a_slow_reader_pauses_and_resumes_a_large_chunked_answer(chunks: int, size: int) -> None:
    """Flow control: an answer far larger than the read buffer (in more chunks, or more bytes,
    than aiohttp buffers before pausing), read slowly, arrives whole and in order; the connection
    is then reused. (The protocol skips aiohttp's resume calls when nothing is paused.)"""
    pieces = [b"%08d" % i + b"x" * (size - 8) for i in range(chunks)]

    async def chunked(conn: Conn) -> None:
        while await conn.request():
            await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            await conn.send(b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")

    client = transport()
    async with Server(chunked) as server:
        for _ in range(2):
            request = httpx.Request(
                "POST",
                f"http://127.0.0.1:{server.port}/",
                content=b"{}",
                extensions={"timeout": httpx.Timeout(10.0).as_dict()},
            )
            response = await client.handle_async_request(request)
            received = []
            async for data in response.aiter_raw():
                received.append(data)
                if len(received) % 8 == 0:
                    await asyncio.sleep(0.001)  # slower than the upstream: its bytes pile up
            await response.aclose()
            assert b"".join(received) == b"".join(pieces)
        await client.aclose()
    assert server.connections == 1

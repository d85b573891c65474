"""The transport's body reads what aiohttp has buffered in one join (``_take_buffered``, issue 18):
the same bytes and the same reader state as aiohttp's ``readany``, which takes the buffered HTTP
chunks one call at a time. Checked on aiohttp's own ``StreamReader`` fed as its C parser feeds
it, and end to end over a scripted chunked answer that arrives in one burst or in pieces."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import pytest
from aiohttp.streams import StreamReader

from shim.upstream import transport as shim_transport
from shim.upstream.transport import _take_buffered
from tests.transport.scripted import Conn, Server, transport


class Protocol:
    """What a ``StreamReader`` calls on its protocol (flow control), counted."""

    connected = True

    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self, resume_parser: bool = True) -> None:
        self.resumed += 1


@dataclass
class Feed:
    id: str
    chunks: list[bytes]
    limit: int = 2**16
    read_first: int = 0  # chunks read (by ``readany``) before the buffer is filled again
    eof: bool = False


FEEDS = [
    Feed("one", [b"data: a\n\n"]),
    Feed("many", [b"data: %d\n\n" % n for n in range(200)]),
    Feed("many-then-eof", [b"data: %d\n\n" % n for n in range(50)], eof=True),
    Feed("over-high-water", [b"x" * 700 for _ in range(10)], limit=1024),  # paused, then resumed
    Feed("too-many-chunks", [b"y" for _ in range(40)], limit=64),  # the chunk-count mark
    Feed("after-a-read", [b"data: %d\n\n" % n for n in range(20)], read_first=1),
]


def _reader(protocol: Protocol, limit: int) -> StreamReader:
    return StreamReader(protocol, limit, loop=asyncio.get_running_loop())  # type: ignore[arg-type]


def _fill(reader: StreamReader, chunks: list[bytes], eof: bool) -> None:
    for chunk in chunks:  # as the C parser does, per HTTP chunk
        reader.begin_http_chunk_receiving()
        reader.feed_data(chunk)
        reader.end_http_chunk_receiving()
    if eof:
        reader.feed_eof()


def _state(reader: StreamReader, protocol: Protocol) -> tuple[object, ...]:
    splits = reader._http_chunk_splits
    return (
        reader._size,
        reader._cursor,
        list(splits) if splits is not None else None,
        len(reader._buffer),
        reader.is_eof(),
        protocol.paused,
        protocol.resumed > 0,
    )


@pytest.mark.parametrize("feed", FEEDS, ids=[feed.id for feed in FEEDS])
async def test_one_join_reads_what_readany_reads(feed: Feed) -> None:
    results = []
    for take in (False, True):
        protocol = Protocol()
        reader = _reader(protocol, feed.limit)
        _fill(reader, feed.chunks[: feed.read_first], False)
        first = [await reader.readany() for _ in range(feed.read_first)]
        _fill(reader, feed.chunks[feed.read_first :], feed.eof)
        data = _take_buffered(reader) if take else await reader.readany()
        results.append((first, data, _state(reader, protocol)))
    assert results[1] == results[0]
    assert results[1][1] == b"".join(feed.chunks[feed.read_first :])


async def _chunked(conn: Conn, pieces: list[bytes], pause: float) -> None:
    await conn.request()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    body = [b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]
    if pause == 0:
        await conn.send(head + b"".join(body))  # the whole answer in one write
        return
    await conn.send(head)
    for part in body:
        await asyncio.sleep(pause)
        await conn.send(part)


@pytest.mark.parametrize("pause", [0.0, 0.01], ids=["one-burst", "paced"])
async def test_a_chunked_answer_reads_whole(pause: float) -> None:
    pieces = [b'data: {"n": %d}\n\n' % n for n in range(30)]

    async def script(conn: Conn) -> None:
        await _chunked(conn, pieces, pause)

    async with Server(script) as server:
        client = transport()
        request = httpx.Request("POST", f"http://127.0.0.1:{server.port}/v1/chat/completions", content=b"{}")
        response = await client.handle_async_request(request)
        body = response.stream
        assert isinstance(body, shim_transport._Body)
        reads: list[bytes] = []
        while True:
            if pause == 0:  # the burst is buffered whole once the head is read: nothing waits
                await asyncio.sleep(0.05)
                assert body.ready()
            chunk = await body.read_chunk()
            if not chunk:
                break
            reads.append(chunk)
        assert b"".join(reads) == b"".join(pieces)
        if pause == 0:
            assert len(reads) == 1, "a burst is one read"
        assert body.ready()  # (at the end: nothing to wait for)
        await client.aclose()

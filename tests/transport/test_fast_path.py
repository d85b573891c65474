"""The transport's direct POST (issue 18): the shim's requests skip ``ClientSession._request``
and its per-request work, yet go out byte for byte as before, each with its own headers, and a
cancelled one still frees its slot and connection."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiohttp
import httpx
import pytest
from aiohttp.client_proto import ResponseHandler

from shim.dialects.registry import get_dialect
from shim.settings import Route, Timeouts
from shim.upstream import transport as shim_transport
from shim.upstream.client import UpstreamClient
from shim.upstream.routing import Resolved
from tests.transport.scripted import Conn, Server, fetch, ok, transport


async def _echo_each(conn: Conn) -> None:
    while await conn.request():
        await conn.send(ok(b'{"ok":true}'))


def _resolved(port: int, key: str = "sk-route") -> Resolved:
    route = Route(upstream=f"http://127.0.0.1:{port}/v1", headers={"X-Org": "acme"})
    return Resolved(route, get_dialect("openai"), "m", key)


def _wire(request: bytes, port: int) -> bytes:
    return request.replace(b"127.0.0.1:%d" % port, b"HOST")


async def test_a_shim_post_goes_out_as_it_did_through_the_session() -> None:
    """The bytes of ``ClientSession.request`` for the same request (aiohttp 3.14, measured
    before the direct path): header names as httpx lower-cases them, in the client's order,
    the length last, no header of aiohttp's own."""
    async with Server(_echo_each) as server:
        client = UpstreamClient(Timeouts())
        try:
            response = await client.send(
                _resolved(server.port), "/chat/completions", b'{"model":"m"}', stream=False
            )
            assert response.content == b'{"ok":true}'
        finally:
            await client.aclose()
    user_agent = httpx.AsyncClient().headers["user-agent"].encode()
    assert _wire(server.requests[0], server.port) == (
        b"POST /v1/chat/completions HTTP/1.1\r\n"
        b"host: HOST\r\n"
        b"accept: application/json, text/event-stream\r\n"
        b"accept-encoding: identity\r\n"
        b"connection: keep-alive\r\n"
        b"user-agent: " + user_agent + b"\r\n"
        b"x-org: acme\r\n"
        b"content-type: application/json\r\n"
        b"authorization: Bearer sk-route\r\n"
        b"content-length: 13\r\n"
        b"\r\n"
        b'{"model":"m"}'
    )


async def test_posts_do_not_go_through_session_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the direct path lost (an aiohttp change, a condition gone wrong), this fails rather
    than the shim quietly paying ``ClientSession._request`` again; other methods still use it."""
    used: list[str] = []
    original = aiohttp.ClientSession._request

    async def spy(self: aiohttp.ClientSession, method: str, *args: Any, **kwargs: Any) -> Any:
        used.append(method)
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", spy)
    async with Server(_echo_each) as server:
        client = transport()
        try:
            assert await fetch(client, server.port) == b'{"ok":true}'
            assert await fetch(client, server.port, headers={"user-agent": "u"}) == b'{"ok":true}'
            assert used == []
            assert await fetch(client, server.port, method="GET") == b'{"ok":true}'
            assert used == ["GET"]
        finally:
            await client.aclose()
    assert server.connections == 1


async def test_each_request_keeps_its_own_headers_and_length() -> None:
    """Header sets are cached (all but the length): two keys and bodies of several lengths,
    interleaved on one URL, each arrive as sent."""
    async with Server(_echo_each) as server:
        client = UpstreamClient(Timeouts())
        try:
            sent = []
            for i in range(6):
                key = f"sk-{i % 2}"
                body = b'{"model":"m","n":"%s"}' % (b"x" * i)
                sent.append((key, body))
                response = await client.send(
                    _resolved(server.port, key), "/chat/completions", body, stream=False
                )
                assert response.status_code == 200
        finally:
            await client.aclose()
    for (key, body), seen in zip(sent, server.requests, strict=True):
        head, _, got = seen.partition(b"\r\n\r\n")
        assert got == body
        assert b"\r\nauthorization: Bearer %s\r\n" % key.encode() in head + b"\r\n"
        assert b"\r\ncontent-length: %d" % len(body) in head
        assert head.count(b"authorization") == 1 and head.count(b"content-length") == 1


async def test_a_post_cancelled_while_waiting_frees_its_slot_and_connection() -> None:
    """With one slot: a POST cancelled while the upstream is silent gives the slot back and
    drops its connection (its answer could still arrive), and the next POST gets both."""
    calls = 0

    async def first_silent(conn: Conn) -> None:
        nonlocal calls
        while await conn.request():
            calls += 1
            if calls == 1:
                await asyncio.sleep(5)
                return
            await conn.send(ok(b"second"))

    async with Server(first_silent) as server:
        client = transport(max_connections=1)
        try:
            waiting = asyncio.create_task(fetch(client, server.port))
            while not calls:
                await asyncio.sleep(0.01)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert await fetch(client, server.port, 1.0) == b"second"
        finally:
            await client.aclose()
    assert server.connections == 2, "the cancelled request's connection was not reused"


async def test_a_post_writes_its_body_without_a_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """The body goes out right after the head, in the same loop turn: aiohttp's body-writer task
    (Python 3.11 has no eager tasks) cost ~57,000 instructions a request (bench/README.md)."""
    loop = asyncio.get_running_loop()
    made: list[str] = []
    create_task = loop.create_task

    def counting(coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(getattr(coro, "__qualname__", repr(coro)))
        return create_task(coro, **kwargs)

    async with Server(_echo_each) as server:
        client = UpstreamClient(Timeouts())
        try:
            await client.send(_resolved(server.port), "/chat/completions", b'{"model":"m"}', stream=False)
            monkeypatch.setattr(loop, "create_task", counting)
            response = await client.send(
                _resolved(server.port), "/chat/completions", b'{"model":"m","n":1}', stream=False
            )
            assert response.content == b'{"ok":true}'
        finally:
            monkeypatch.undo()
            await client.aclose()
    assert not [name for name in made if "write_bytes" in name], made
    assert server.requests[1].endswith(b'\r\n\r\n{"model":"m","n":1}')


@pytest.mark.parametrize(
    ("headers", "expects"),
    [({"x-org": "acme"}, False), ({"Expect": "100-continue"}, True), ({"expect": "anything"}, True)],
)
def test_an_expect_header_leaves_the_body_to_aiohttp(headers: dict[str, str], expects: bool) -> None:
    """aiohttp's writer waits for ``100 Continue`` before the body: such a set keeps its task."""
    prepared = transport().prepare(httpx.Headers({"host": "h", **headers}))
    assert prepared is not None and prepared.expects is expects


async def test_a_post_leaves_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The head and the body of a POST go to the socket in one write: one syscall and one
    wake-up of the upstream, not two (bench/README.md, issue 18); the bytes are the same."""
    writes: list[bytes] = []

    class Counting:
        def __init__(self, inner: asyncio.Transport) -> None:
            self.inner = inner

        def write(self, data: bytes) -> None:
            writes.append(bytes(data))
            self.inner.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    made = ResponseHandler.connection_made

    def counted(self: ResponseHandler, transport: asyncio.BaseTransport) -> None:
        made(self, cast(asyncio.BaseTransport, Counting(cast(asyncio.Transport, transport))))

    monkeypatch.setattr(ResponseHandler, "connection_made", counted)
    async with Server(_echo_each) as server:
        client = UpstreamClient(Timeouts())
        try:
            for n in range(2):  # a new connection, then a reused one
                body = b'{"model":"m","n":%d}' % n
                response = await client.send(_resolved(server.port), "/chat/completions", body, stream=False)
                assert response.content == b'{"ok":true}'
        finally:
            await client.aclose()
    assert len(writes) == 2, writes
    for n, (written, seen) in enumerate(zip(writes, server.requests, strict=True)):
        assert written == seen
        assert written.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert written.endswith(b'\r\n\r\n{"model":"m","n":%d}' % n)


ANSWER_HEADS = {
    "ascii, a repeated name": ((b"Content-Type", b"application/json"), (b"X-A", b"1"), (b"x-a", b"2")),
    "utf-8 value": ((b"X-Name", "café".encode()),),
    "latin-1 value": ((b"X-Name", b"\xff"),),
    "none": (),
}


@pytest.mark.parametrize("raw", ANSWER_HEADS.values(), ids=ANSWER_HEADS.keys())
def test_an_answer_is_built_as_httpx_builds_it(raw: tuple[tuple[bytes, bytes], ...]) -> None:
    """The transport builds its ``httpx.Response`` attribute by attribute (issue 18: httpx's
    constructor cost ~3 us an answer); the same object as ``httpx.Response(...)`` gives, headers
    and their encoding included. If an httpx release changes that shape, the transport falls
    back to the constructor (``_FAST_ANSWER`` false) and this fails, naming it."""
    assert shim_transport._FAST_ANSWER, "httpx.Response changed shape: the fast answer is off"
    stream = httpx.ByteStream(b"")
    extensions = {"http_version": b"HTTP/1.1", "reason_phrase": b"OK"}
    fast = shim_transport._fast_response(201, raw, stream, dict(extensions))
    slow = httpx.Response(201, headers=raw, stream=stream, extensions=extensions)
    assert type(fast) is httpx.Response
    assert vars(fast.headers) == vars(slow.headers)
    assert {k: v for k, v in vars(fast).items() if k != "headers"} == {
        k: v for k, v in vars(slow).items() if k != "headers"
    }
    assert fast.headers.encoding == slow.headers.encoding
    assert fast.headers.multi_items() == slow.headers.multi_items()
    assert fast.headers.get("x-name") == slow.headers.get("x-name")


IDENTITY = {
    "no content-encoding": (b"", True),
    "gzip": (b"content-encoding: gzip\r\n", False),
    "identity named": (b"Content-Encoding: identity\r\n", False),
}


@pytest.mark.parametrize(("head", "identity"), IDENTITY.values(), ids=IDENTITY.keys())
async def test_an_answer_says_whether_it_is_encoded(head: bytes, identity: bool) -> None:
    """``_Body.identity`` (the client then skips looking through httpx's headers for a
    content-encoding) only when aiohttp's parsed head has none."""

    async def answer(conn: Conn) -> None:
        while await conn.request():
            await conn.send(ok(b'{"ok":true}', head))

    async with Server(answer) as server:
        client = transport()
        try:
            request = httpx.Request(
                "POST", f"http://127.0.0.1:{server.port}/v1/chat/completions", content=b"{}"
            )
            response = await client.handle_async_request(request)
            assert getattr(response.stream, "identity", None) is identity
            await response.aclose()
        finally:
            await client.aclose()


HEADER_SETS = {
    "the client's set": {"host": "h:1", "accept": "*/*", "user-agent": "u", "x-org": "acme"},
    "no host": {"accept": "*/*", "x-a": "1"},
    "Host named otherwise": {"HOST": "other:2", "x-a": "1"},
    "none": {},
}


@pytest.mark.parametrize("headers", HEADER_SETS.values(), ids=HEADER_SETS.keys())
@pytest.mark.parametrize("length", ["12", None])
async def test_a_request_holds_the_headers_aiohttp_builds(
    headers: dict[str, str], length: str | None
) -> None:
    """``_Request`` copies the header dict built for a set the first time (issue 18): each
    request holds what ``ClientRequest`` builds from the pairs and the length, names, order and
    host included, and a change to one request's dict reaches no other."""
    prepared = transport().prepare(httpx.Headers(headers))  # type: ignore[attr-defined]
    assert prepared is not None
    url = shim_transport.URL("http://127.0.0.1:9/v1/chat/completions")
    pairs = [*prepared.pairs, *([("content-length", length)] if length else [])]
    wanted = list(
        aiohttp.ClientRequest("POST", url, headers=pairs, skip_auto_headers=prepared.skip).headers.items()
    )
    for _ in range(3):
        made = shim_transport._Request(
            "POST", url, headers=shim_transport._WithLength(prepared, length), skip_auto_headers=prepared.skip
        )
        assert list(made.headers.items()) == wanted
        made.headers["x-changed"] = "1"
    assert list(shim_transport._WithLength(prepared, length)) == pairs

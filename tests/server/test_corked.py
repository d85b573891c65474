"""An answer's head leaves with the first bytes of its body (``shim/http/corked.py``): one write
per JSON answer instead of two, the same bytes in the same order, nothing held past a loop turn."""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any

import pytest
import uvicorn

from shim.http.corked import EXTENSION, CorkedHttpToolsProtocol, HeadWithBody, Leaving, http_protocol

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class _Recording:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _corked() -> tuple[HeadWithBody, _Recording]:
    inner = _Recording()
    return HeadWithBody(inner), inner  # type: ignore[arg-type]


def test_a_held_head_leaves_with_the_body() -> None:
    corked, inner = _corked()
    corked.hold_next_head()
    corked.write(HEAD)
    assert inner.writes == []
    assert corked.get_write_buffer_size() == len(HEAD)
    corked.write(b"{}")
    assert inner.writes == [HEAD + b"{}"]
    corked.write(HEAD)  # not held: only the head after a ``hold_next_head``
    assert inner.writes == [HEAD + b"{}", HEAD]


def test_without_a_hold_every_write_goes_at_once() -> None:
    corked, inner = _corked()
    corked.write(HEAD)
    corked.write(b"chunk")
    corked.writelines([b"a", b"b"])
    assert inner.writes == [HEAD, b"chunk", b"ab"]
    assert corked.get_extra_info("peername") == "info:peername"
    assert not corked.is_closing()


@pytest.mark.parametrize(
    ("ending", "expected", "closed", "aborted"),
    [("close", [HEAD], True, False), ("abort", [], False, True), ("write_eof", [HEAD], False, False)],
)
def test_ending_the_connection_with_a_head_held(
    ending: str, expected: list[bytes], closed: bool, aborted: bool
) -> None:
    """``close`` sends what was held first (as a transport does with its buffer); ``abort`` drops it."""
    corked, inner = _corked()
    inner.write_eof = lambda: inner.writes.append(b"<eof>")  # type: ignore[attr-defined]
    corked.hold_next_head()
    corked.write(HEAD)
    getattr(corked, ending)()
    assert [w for w in inner.writes if w != b"<eof>"] == expected
    assert (inner.closed, inner.aborted) == (closed, aborted)


def test_a_head_held_on_a_closed_connection_is_dropped() -> None:
    corked, inner = _corked()
    corked.hold_next_head()
    corked.write(HEAD)
    inner.closed = True
    corked.flush()
    assert inner.writes == []


def test_the_option_picks_it_where_uvicorn_would_use_httptools() -> None:
    assert http_protocol("auto") == "shim.http.corked:CorkedHttpToolsProtocol"
    assert http_protocol("httptools") == "shim.http.corked:CorkedHttpToolsProtocol"
    assert http_protocol("h11") == "h11"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/stream":  # a stream: no hold, its head goes at once
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for part in (b"one", b"two"):
            await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope["extensions"][EXTENSION]()  # as ``hot_routes._send_bytes`` does
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _exchange(port: int, request: bytes, until: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        data = b""
        while not data.endswith(until):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            assert chunk, data
            data += chunk
        return data
    finally:
        writer.close()


async def test_uvicorn_with_it_answers_json_and_streams_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real uvicorn server: the JSON answer's head and body in one write, a stream's chunks
    all arrive, framed as uvicorn frames them."""
    writes: list[bytes] = []
    original = HeadWithBody.write

    def spying(self: HeadWithBody, data: bytes) -> None:
        before = len(writes)
        record = self.transport.write

        def recorded(out: bytes) -> None:
            writes.append(bytes(out))
            record(out)

        self.transport.write = recorded  # type: ignore[method-assign]
        try:
            original(self, data)
        finally:
            del self.transport.write
        assert len(writes) - before <= 1

    monkeypatch.setattr(HeadWithBody, "write", spying)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app, http=CorkedHttpToolsProtocol, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        answer = await _exchange(port, b"POST /json HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}", b"}")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'\r\n\r\n{"ok":true}')
        assert writes == [answer], "head and body in one write"
        streamed = await _exchange(port, b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n", b"0\r\n\r\n")
        assert streamed.endswith(b"\r\n\r\n3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")
        assert b"transfer-encoding: chunked\r\n" in streamed
        assert writes[1].startswith(b"HTTP/1.1 200 OK\r\n") and writes[1].endswith(b"\r\n\r\n")
        assert len(writes) == 5, "the stream's head at once, then each chunk and the end"
    finally:
        server.should_exit = True
        await serving


async def test_the_hot_route_holds_the_head_of_a_json_answer() -> None:
    """``_send_bytes`` asks for the hold right before its start message (then sends the body)."""
    from litestar import Response

    from shim.http.hot_routes import _send_bytes

    seen: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        seen.append(message["type"])

    scope = {"extensions": {EXTENSION: lambda: seen.append("hold")}}
    await _send_bytes(Response(content=b"{}", media_type="application/json"), 200, send, scope)  # type: ignore[arg-type]
    assert seen == ["hold", "http.response.start", "http.response.body"]
    seen.clear()
    await _send_bytes(Response(content=b"{}"), 200, send, {})  # type: ignore[arg-type]
    assert seen == ["http.response.start", "http.response.body"]  # (no extension: nothing held)


class _Cycle:
    def __init__(self) -> None:
        self.disconnected = False
        self.response_complete = False
        self.resumed = 0
        self.flow = self

    def resume_reading(self) -> None:
        self.resumed += 1


def test_leaving_calls_back_once_when_heard_and_not_after_it_is_taken_back() -> None:
    heard: list[str] = []
    leaving, cycle = Leaving(), _Cycle()
    leaving.cycle = cycle  # type: ignore[assignment]
    leaving(lambda: heard.append("left"))
    assert cycle.resumed == 1, "reading resumed, as a receive waiting after the body does"
    leaving.heard()
    leaving.heard()
    assert heard == ["left"]
    leaving(lambda: heard.append("again"))
    leaving(None)
    leaving.heard()
    assert heard == ["left"]


@pytest.mark.parametrize("state", ["disconnected", "response_complete"])
def test_leaving_calls_back_at_once_where_receive_would_say_disconnect(state: str) -> None:
    heard: list[str] = []
    leaving, cycle = Leaving(), _Cycle()
    setattr(cycle, state, True)
    leaving.cycle = cycle  # type: ignore[assignment]
    leaving(lambda: heard.append("left"))
    assert heard == ["left"] and cycle.resumed == 0


async def _serving(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=CorkedHttpToolsProtocol, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, serving, sock.getsockname()[1]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_uvicorn_tells_the_shim_its_client_left(stream: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real uvicorn with this protocol: a client that leaves mid-answer stops its upstream
    work (the unstreamed turn cancelled, the stream's upstream answer closed), heard through
    ``shim.on_disconnect`` (no watcher task waits on ``receive``)."""
    from shim.http.disconnect import Watch
    from tests.server.harness import build_shim, stalling_stream

    tasks: list[object] = []
    monkeypatch.setattr(Watch, "_listen", lambda self: tasks.append(self))
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    shim = build_shim(target=silent)
    opened: list[Any] = []
    if stream:
        shim.upstream.use(stalling_stream(60.0, opened=opened))
    server, serving, port = await _serving(shim.app)
    try:
        body = b'{"model": "m", "input": "Say hello.", "stream": %s}' % (b"true" if stream else b"false")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        if stream:
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)  # its first event
        else:
            await asyncio.wait_for(started.wait(), 5)
        writer.close()
        if stream:
            for _ in range(500):
                if opened and opened[0].closed:
                    break
                await asyncio.sleep(0.01)
            assert opened and opened[0].closed, "the upstream answer was closed"
        else:
            await asyncio.wait_for(cancelled.wait(), 5)
        assert tasks == [], "no watcher task"
    finally:
        server.should_exit = True
        await serving
        await shim.client.aclose()


@pytest.mark.parametrize("answers", [1, 40])
async def test_a_finished_request_leaves_no_reference_cycle(answers: int) -> None:
    """Each request's ``Leaving`` holds its cycle, whose scope holds the ``Leaving``: left
    standing, every answered request was garbage only the cyclic collector could free, and the
    collections of the full heap it brings on showed as a one-client p99 of 2-5 ms against 1
    (bench.ab, issue 18, sixth round). Answered on one kept connection, none may be left."""
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from tests.server.harness import build_shim

    shim = build_shim()
    server, serving, port = await _serving(shim.app)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"model": "m", "input": "Say hello."}'
        for _ in range(answers):
            writer.write(
                b"POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), 5)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, RequestResponseCycle | Leaving)]
        assert left == [], f"{len(left)} request objects freed only by the cyclic collector"
        writer.close()
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        server.should_exit = True
        await serving
        await shim.client.aclose()

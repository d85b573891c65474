"""bench/floor.py, the stack floor of the benchmark: a raw ASGI relay on uvicorn through the
shim's upstream transport. It must relay the fake upstream's answers byte for byte (JSON and
streams, both APIs), refuse what it does not relay, and stop relaying when the client leaves;
else its figures would not be a proxy's."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.floor import Floor
from bench.servers import Proc, Target, free_port, start_target, start_upstream

CPUS = f"0-{(os.cpu_count() or 1) - 1}"
CHAT = {"model": "fake", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
RESPONSES = {"model": "fake", "input": "Say hello.", "max_output_tokens": 8}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Proc, Proc]]:
    upstream = start_upstream(CPUS, 8, 0.0)
    probe = ("/v1/chat/completions", json.dumps(CHAT).encode())
    try:
        with tempfile.TemporaryDirectory() as data:
            floor = start_target(
                Target("floor", "floor"),
                f"http://127.0.0.1:{upstream.port}/v1",
                "chat",
                CPUS,
                probe,
                Path(data),
            )
            try:
                yield upstream, floor
            finally:
                floor.stop()
    finally:
        upstream.stop()


def _post(port: int, path: str, body: bytes, method: str = "POST") -> tuple[int, str, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        body if method == "POST" else None,
        {"content-type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read()


@pytest.mark.parametrize(
    ("path", "body", "media_type"),
    [
        ("/v1/chat/completions", CHAT, "application/json"),
        ("/v1/chat/completions", {**CHAT, "stream": True}, "text/event-stream"),
        ("/v1/responses", RESPONSES, "application/json"),
        ("/v1/responses", {**RESPONSES, "stream": True}, "text/event-stream"),
    ],
)
def test_floor_relays_the_upstream_answer_byte_for_byte(
    servers: tuple[Proc, Proc], path: str, body: dict[str, Any], media_type: str
) -> None:
    upstream, floor = servers
    raw = json.dumps(body).encode()
    direct = _post(upstream.port, path, raw)
    relayed = _post(floor.port, path, raw)
    assert relayed == direct
    assert relayed[0] == 200 and relayed[1].startswith(media_type)
    assert b"Hello" in relayed[2]


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [("/health", "POST", 404), ("/v1/chat/completions", "GET", 405)],
)
def test_floor_refuses_what_it_does_not_relay(
    servers: tuple[Proc, Proc], path: str, method: str, status: int
) -> None:
    _, floor = servers
    code, media_type, body = _post(floor.port, path, b"{}", method)
    assert (code, media_type) == (status, "application/json")
    assert json.loads(body)["error"]["message"]


def test_floor_answers_502_when_the_upstream_is_down() -> None:
    app = Floor(f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    sent = asyncio.run(_call(app, json.dumps(CHAT).encode(), leave_after_first_chunk=False))
    assert sent[0]["status"] == 502
    assert json.loads(sent[1]["body"])["error"]["type"] == "upstream_error"


async def _call(app: Floor, body: bytes, *, leave_after_first_chunk: bool) -> list[dict[str, Any]]:
    """The app called as uvicorn calls it; the client leaves once a body chunk went out."""
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b""}
    sent: list[dict[str, Any]] = []
    first = asyncio.Event()
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await (first.wait() if leave_after_first_chunk else asyncio.Event().wait())
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)
        if message.get("body"):
            first.set()

    try:
        await asyncio.wait_for(app(scope, receive, send), 10)
    finally:
        await app.transport.aclose()
    return sent


def test_a_client_that_leaves_stops_the_relay() -> None:
    upstream = start_upstream(CPUS, 40, 0.1)  # a 4-second stream
    try:
        app = Floor(f"http://127.0.0.1:{upstream.port}/v1")

        async def timed() -> tuple[list[dict[str, Any]], float]:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            sent = await _call(
                app, json.dumps({**CHAT, "stream": True}).encode(), leave_after_first_chunk=True
            )
            return sent, loop.time() - t0

        sent, elapsed = asyncio.run(timed())
    finally:
        upstream.stop()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert len(sent) == 2  # the start and the first chunk; nothing after the client left
    assert all(m.get("more_body", True) for m in sent[1:])  # the answer was never ended
    assert elapsed < 2.0  # not the stream's 4 seconds

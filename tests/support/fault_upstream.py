"""A misbehaving Chat Completions upstream on a real loopback socket.

Unlike the in-process fakes in ``tests/server/harness.py`` this one speaks HTTP/1.1 over TCP, so
timeouts, resets (RST), half-sent bodies and client hang-ups behave as they do on a network.
The request's ``model`` picks the fault (``"drip"``, ``"status-503"``…, see ``MODES``); the
server counts requests per model and the connections open right now (``open_connections``), so a
test can assert retries and that a hung-up client's upstream request was really cancelled.

    async with FaultUpstream() as upstream:
        url = upstream.url            # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import socket
import struct
import zlib
from collections import Counter
from typing import Any

__all__ = ["MODES", "FaultUpstream", "refused_url"]

ANSWER = ["The ", "fault ", "upstream ", "answers."]
USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}

MODES = {
    "ok": "a normal answer (JSON or SSE, as the request asks)",
    "hang": "reads the request, never answers (timeout before headers)",
    "silence": "sends 200 headers, then nothing (idle timeout)",
    "drip": "a normal answer, one piece every 50 ms",
    "soak": "a long answer: 40 pieces, one every 50 ms (2 s); soak:0.2 sets the interval",
    "status-429": "429 with Retry-After: 0",
    "status-429-bare": "429 without Retry-After",
    "status-429-long": "429 with Retry-After: 3600",
    "status-500": "500",
    "huge-error": "500 with an endless body",
    "status-502": "502",
    "status-503": "503",
    "flaky-503": "503 on the first request of this model, then a normal answer",
    "malformed": "200 with a body that is not JSON",
    "truncated": "SSE that stops without finish_reason or [DONE]",
    "garbage": "SSE with garbage lines between the real events",
    "reset": "a few SSE events (or half a JSON body), then a TCP reset",
    "huge": "an endless answer (bounded only by the client)",
    "stall": "two SSE events, then silence until the client hangs up",
    "echo-key": "401 whose message repeats the Authorization header (as some vendors do)",
    "echo-key-stream": "an SSE error chunk that repeats the Authorization header",
    "echo-key-answer": "a 200 answer (JSON or SSE) whose text repeats the Authorization header",
    "drop-after-body": "reads the whole request, then hangs up without answering",
    "reset-after-body": "reads the whole request, works 0.2 s, then resets the connection",
    "gzip": "a normal answer, gzip-encoded whatever the request accepts (SSE: one gzip stream)",
    "gzip-400": "a gzip-encoded 400 context_length_exceeded error",
    "gzip-bomb": "a 200 JSON answer of 16 MiB that gzip squeezes to ~16 KB",
    "huge-headers": "200 headers without end (64 MiB), then a normal answer",
}

CONTEXT_ERROR = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


@functools.cache
def gzip_bomb() -> bytes:
    """16 MiB of JSON-looking text, gzipped 1000:1 (built once: compressing it takes a moment)."""
    inner = b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "' + b" " * (16 << 20) + b'"}}]}'
    return gzip.compress(inner, compresslevel=9)


def refused_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def stream_events(model: str) -> list[bytes]:
    """A complete, well-formed Chat stream."""
    events = [_chunk(model, {"role": "assistant", "content": ""})]
    events += [_chunk(model, {"content": piece}) for piece in ANSWER]
    events.append(_chunk(model, {}, "stop"))
    usage = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1700000000}
    events.append(b"data: " + json.dumps({**usage, "model": model, "choices": [], "usage": USAGE}).encode())
    events[-1] += b"\n\n"
    events.append(b"data: [DONE]\n\n")
    return events


def completion(model: str, text: str | None = None) -> bytes:
    message = {"role": "assistant", "content": "".join(ANSWER) if text is None else text}
    data = {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": USAGE,
    }
    return json.dumps(data).encode()


class _Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body
        try:
            self.json: dict[str, Any] = json.loads(body) if body else {}
        except ValueError:
            self.json = {}
        self.model = str(self.json.get("model", ""))
        self.stream = bool(self.json.get("stream"))


class FaultUpstream:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.traceparents: list[str] = []  # W3C trace context the shim passed on
        self.open_connections = 0
        self.busy_connections = 0  # open and in the middle of an answer (the rest idle in a pool)
        self.connections_seen = 0
        self.header_bytes_sent = 0  # by huge-headers, before the client hung up
        self.accept_encodings: list[str] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FaultUpstream:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def wait_connections(self, count: int, within: float) -> bool:
        """Wait until at most ``count`` connections are open; ``False`` if that took too long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.open_connections > count:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # ------------------------------------------------------------------ HTTP plumbing

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open_connections += 1
        self.connections_seen += 1
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                if request.path == "/_stats":  # for out-of-process load tests
                    stats = {
                        "open_connections": self.open_connections - 1,
                        "busy_connections": self.busy_connections,
                        "requests": sum(self.requests.values()),
                    }
                    await self._send_json(writer, 200, json.dumps(stats).encode())
                    continue
                self.requests[request.model] += 1
                self.bodies.append(request.json)
                self.authorizations.append(request.headers.get("authorization", ""))
                self.accept_encodings.append(request.headers.get("accept-encoding", ""))
                self.traceparents.append(request.headers.get("traceparent", ""))
                self.busy_connections += 1
                try:
                    keep = await self._answer(request, reader, writer)
                finally:
                    self.busy_connections -= 1
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.open_connections -= 1
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
        head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
        if not head:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return _Request(method, path, headers, body)

    @staticmethod
    def _head(status: int, content_type: str, extra: dict[str, str] | None = None, **kw: int) -> bytes:
        reason = {200: "OK", 401: "Unauthorized", 429: "Too Many Requests"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {content_type}"]
        if "length" in kw:
            lines.append(f"content-length: {kw['length']}")
        else:
            lines.append("transfer-encoding: chunked")
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _send_json(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        writer.write(self._head(status, "application/json", extra, length=len(body)) + body)
        await writer.drain()

    @staticmethod
    async def _piece(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()

    @staticmethod
    async def _end(writer: asyncio.StreamWriter) -> None:
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    @staticmethod
    async def _until_hangup(reader: asyncio.StreamReader) -> None:
        while await reader.read(1024):
            pass

    # ------------------------------------------------------------------ faults

    async def _answer(
        self, req: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; ``True`` keeps the connection for the next one."""
        mode, model = req.model, req.model
        interval = 0.05
        if mode.startswith("soak:"):
            mode, interval = "soak", float(mode.split(":", 1)[1])
        if mode == "flaky-503":
            mode = "status-503" if self.requests[model] == 1 else "ok"
        if mode == "huge-error":
            writer.write(self._head(500, "text/plain", length=1 << 40))
            while True:
                writer.write(b"error " * 10000)
                await writer.drain()
        if mode.startswith("status-"):
            status = int(mode.split("-")[1])
            extra = {"status-429": {"retry-after": "0"}, "status-429-long": {"retry-after": "3600"}}.get(mode)
            body = json.dumps({"error": {"message": f"fault upstream says {status}", "code": None}})
            await self._send_json(writer, status, body.encode(), extra)
            return True
        if mode == "echo-key":
            message = f"Incorrect API key provided: {req.headers.get('authorization', '')}"
            await self._send_json(writer, 401, json.dumps({"error": {"message": message}}).encode())
            return True
        if mode in ("hang", "stall", "silence"):
            if mode == "silence":
                writer.write(self._head(200, "text/event-stream"))
                await writer.drain()
            if mode == "stall":
                writer.write(self._head(200, "text/event-stream"))
                for event in stream_events(model)[:2]:
                    await self._piece(writer, event)
            await self._until_hangup(reader)
            return False
        if mode == "malformed":
            await self._send_json(writer, 200, b'{"id": "chatcmpl-x", "choices": [{"message": ')
            return True
        if mode == "huge":
            return await self._huge(req, writer)
        if mode == "drop-after-body":
            return False  # the request was read: hang up (FIN) without a byte of answer
        if mode == "reset-after-body":
            await asyncio.sleep(0.2)
            self._reset(writer)
            return False
        if mode.startswith("gzip"):
            return await self._gzip(req, mode, writer)
        if mode == "huge-headers":
            writer.write(b"HTTP/1.1 200 OK\r\n")
            line = b"x-filler: " + b"a" * 1000 + b"\r\n"
            while self.header_bytes_sent < 64 << 20:
                writer.write(line * 64)
                self.header_bytes_sent += len(line) * 64
                await writer.drain()
            await self._send_json(writer, 200, completion(model))  # (its status line ends the flood)
            return False
        if not req.stream:
            return await self._json_answer(req, mode, writer)
        writer.write(self._head(200, "text/event-stream"))
        events = stream_events(model)
        if mode == "soak":
            events = events[:1] + [_chunk(model, {"content": f"w{i} "}) for i in range(40)] + events[-3:]
        if mode == "truncated":
            events = events[:3]
        elif mode == "garbage":
            junk = [b"this is not sse\n\n", b"data: {not json\n\n", b"\x00\xff\n\n", b"event: weird\n\n"]
            events = [e for pair in zip(events, junk * 3, strict=False) for e in pair] + events[
                len(junk) * 3 :
            ]
        elif mode == "reset":
            for event in events[:3]:
                await self._piece(writer, event)
            self._reset(writer)
            return False
        elif mode == "echo-key-answer":
            echoed = _chunk(model, {"content": f"your key is {req.headers.get('authorization', '')}"})
            events = [events[0], echoed, *events[-3:]]
        elif mode == "echo-key-stream":
            error = {"error": {"message": f"bad key {req.headers.get('authorization', '')}"}}
            events = [events[0], b"data: " + json.dumps(error).encode() + b"\n\n"]
        for event in events:
            if mode in ("drip", "soak"):
                await asyncio.sleep(interval)
            await self._piece(writer, event)
        await self._end(writer)
        return True

    async def _json_answer(self, req: _Request, mode: str, writer: asyncio.StreamWriter) -> bool:
        body = completion(req.model)
        if mode == "echo-key-answer":
            body = completion(req.model, f"your key is {req.headers.get('authorization', '')}")
        if mode == "reset":
            writer.write(self._head(200, "application/json", length=len(body)) + body[: len(body) // 2])
            await writer.drain()
            self._reset(writer)
            return False
        if mode == "drip":
            writer.write(self._head(200, "application/json", length=len(body)))
            for i in range(0, len(body), len(body) // 4 + 1):
                await asyncio.sleep(0.05)
                writer.write(body[i : i + len(body) // 4 + 1])
                await writer.drain()
            return True
        if mode == "truncated":  # a JSON answer cut short, announced as whole
            writer.write(self._head(200, "application/json", length=len(body)) + body[:20])
            await writer.drain()
            return False
        await self._send_json(writer, 200, body)
        return True

    async def _gzip(self, req: _Request, mode: str, writer: asyncio.StreamWriter) -> bool:
        """Compressed whatever the request's Accept-Encoding says (some servers do)."""
        gz = {"content-encoding": "gzip"}
        if mode == "gzip-400":
            await self._send_json(writer, 400, gzip.compress(json.dumps(CONTEXT_ERROR).encode()), gz)
            return True
        if mode == "gzip-bomb":
            await self._send_json(writer, 200, gzip_bomb(), gz)
            return True
        if not req.stream:
            await self._send_json(writer, 200, gzip.compress(completion(req.model)), gz)
            return True
        writer.write(self._head(200, "text/event-stream", gz))
        squeezer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        for event in stream_events(req.model):  # each event flushed: the stream stays a stream
            await self._piece(writer, squeezer.compress(event) + squeezer.flush(zlib.Z_SYNC_FLUSH))
        await self._piece(writer, squeezer.flush())
        await self._end(writer)
        return True

    async def _huge(self, req: _Request, writer: asyncio.StreamWriter) -> bool:
        """Content without end: ``stream`` sends content chunks, otherwise one JSON string that
        never closes. Stops when the client hangs up."""
        piece = _chunk(req.model, {"content": "x" * 8000}) if req.stream else b"x" * 65536
        if req.stream:
            writer.write(self._head(200, "text/event-stream"))
            await self._piece(writer, _chunk(req.model, {"role": "assistant", "content": ""}))
        else:
            writer.write(self._head(200, "application/json", length=1 << 40))
            writer.write(
                b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"message": {"content": "'
            )
        while True:
            if req.stream:
                await self._piece(writer, piece)
            else:
                writer.write(piece)
                await writer.drain()


async def _serve_forever(port: int) -> None:
    async with FaultUpstream() as upstream:
        assert upstream._server is not None
        upstream._server.close()  # rebind on the requested port
        upstream._server = await asyncio.start_server(upstream._connection, "127.0.0.1", port, backlog=4096)
        print(upstream.url, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":  # python tests/support/fault_upstream.py PORT (bench/soak.py)
    import sys

    asyncio.run(_serve_forever(int(sys.argv[1]) if len(sys.argv) > 1 else 0))

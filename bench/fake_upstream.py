"""A fast fake upstream: Chat Completions and Open Responses, JSON and SSE, on raw asyncio.

    .venv/bin/python -m bench.fake_upstream --port 9100 --tokens 50 [--delay 0.1]

It must never be the bottleneck, so it skips every framework: an ``asyncio.Protocol`` parses just
enough HTTP/1.1 (request line, Content-Length, keep-alive) and answers with bytes built once at
start-up. ``POST .../chat/completions`` and ``POST .../responses`` answer with ``--tokens`` text
tokens; ``"stream": true`` in the body selects SSE (chunked transfer encoding, one SSE event per
HTTP chunk). ``--delay`` paces a stream at one event per ``delay`` seconds (timers, no task per
stream); without it the whole stream goes out in one write, at full speed.

``--tool-call NAME`` (with ``--tool-arguments JSON``) scripts a model that calls a tool: a Chat
request that offers tools and holds no tool result yet is answered with one call of ``NAME``
(``finish_reason: tool_calls``); once a ``tool`` message is in the request, or without tools, the
usual text answer. Hosted-tool benchmark (``bench/hosted_tool.py``): round one calls the MCP tool,
round two answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Callable

__all__ = ["Answers", "build_answers", "main"]

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_TOOLS = re.compile(rb'"tools"\s*:\s*\[\s*\{')
_TOOL_RESULT = re.compile(rb'"role"\s*:\s*"tool"')


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _json_response(body: bytes, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


_SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _words(tokens: int) -> list[str]:
    return [("Hello" if i == 0 else f" word{i}") for i in range(tokens)]


def chat_answers(tokens: int) -> tuple[bytes, list[bytes]]:
    """A whole chat.completion body and the SSE events of the same answer streamed."""
    words = _words(tokens)
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": tokens + 12}
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": "fake"}
    whole = {
        **base,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(words)},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }

    def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + _dumps({**base, "choices": [choice]}) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": w}) for w in words]
    events.append(chunk({}, "stop"))
    events.append(b"data: " + _dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return _dumps(whole), events


def chat_tool_call(name: str, arguments: str) -> tuple[bytes, list[bytes]]:
    """One call of ``name`` as a whole chat.completion and as SSE (name first, arguments after)."""
    usage = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
    base = {
        "id": "chatcmpl-fake-call",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fake",
    }
    call = {"id": "call_fake_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    whole = {
        **base,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": usage,
    }

    def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + _dumps({**base, "choices": [choice]}) + b"\n\n"

    head = {"index": 0, **call, "function": {"name": name, "arguments": ""}}
    events = [
        chunk({"role": "assistant", "content": None, "tool_calls": [head]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
        chunk({}, "tool_calls"),
        b"data: " + _dumps({**base, "choices": [], "usage": usage}) + b"\n\n",
        b"data: [DONE]\n\n",
    ]
    return _dumps(whole), events


def _resource(status: str, output: list[object], usage: object) -> dict[str, object]:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1700000000,
        "completed_at": 1700000001 if status == "completed" else None,
        "status": status,
        "incomplete_details": None,
        "model": "fake",
        "previous_response_id": None,
        "instructions": None,
        "output": output,
        "error": None,
        "tools": [],
        "tool_choice": "auto",
        "truncation": "disabled",
        "parallel_tool_calls": True,
        "text": {"format": {"type": "text"}},
        "top_p": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_logprobs": 0,
        "temperature": 1.0,
        "reasoning": None,
        "usage": usage,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "store": False,
        "background": False,
        "service_tier": "default",
        "metadata": {},
        "safety_identifier": None,
        "prompt_cache_key": None,
    }


def responses_answers(tokens: int) -> tuple[bytes, list[bytes]]:
    """A whole response resource and the Open Responses SSE events of the same answer."""
    words = _words(tokens)
    text = "".join(words)
    usage = {
        "input_tokens": 12,
        "output_tokens": tokens,
        "total_tokens": tokens + 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item = {
        "type": "message",
        "id": "msg_fake",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    whole = _resource("completed", [item], usage)
    seq = 0

    def ev(kind: str, **fields: object) -> bytes:
        nonlocal seq
        seq += 1
        return (
            b"event: "
            + kind.encode()
            + b"\ndata: "
            + _dumps({"type": kind, "sequence_number": seq - 1, **fields})
            + b"\n\n"
        )

    open_item = {**item, "status": "in_progress", "content": []}
    loc = {"item_id": "msg_fake", "output_index": 0, "content_index": 0}
    events = [
        ev("response.created", response=_resource("in_progress", [], None)),
        ev("response.in_progress", response=_resource("in_progress", [], None)),
        ev("response.output_item.added", output_index=0, item=open_item),
        ev("response.content_part.added", **loc, part={**part, "text": ""}),
    ]
    events += [ev("response.output_text.delta", **loc, delta=w, logprobs=[]) for w in words]
    events += [
        ev("response.output_text.done", **loc, text=text, logprobs=[]),
        ev("response.content_part.done", **loc, part=part),
        ev("response.output_item.done", output_index=0, item=item),
        ev("response.completed", response=whole),
    ]
    return _dumps(whole), events


def _sse(events: list[bytes]) -> list[bytes]:
    """The HTTP chunks of an SSE answer, the head with the first."""
    return [_SSE_HEAD + _chunk(events[0])] + [_chunk(e) for e in events[1:]] + [_LAST_CHUNK]


_CHAT = b"/chat/completions"


class Answers:
    """Every response this server can give, as ready-to-write bytes."""

    def __init__(self, tokens: int, tool_call: tuple[str, str] | None = None) -> None:
        self.json: dict[bytes, bytes] = {}
        self.sse: dict[bytes, list[bytes]] = {}
        for suffix, build in ((_CHAT, chat_answers), (b"/responses", responses_answers)):
            body, events = build(tokens)
            self.json[suffix] = _json_response(body)
            self.sse[suffix] = _sse(events)
        self.sse_whole = {k: b"".join(v) for k, v in self.sse.items()}
        self.call_json: bytes | None = None  # --tool-call: round one's answer (Chat only)
        self.call_sse: list[bytes] = []
        if tool_call is not None:
            body, events = chat_tool_call(*tool_call)
            self.call_json = _json_response(body)
            self.call_sse = _sse(events)
        models = {
            "object": "list",
            "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "bench"}],
        }
        self.models = _json_response(_dumps(models))
        error = {
            "error": {"message": "Not found.", "type": "invalid_request_error", "param": None, "code": None}
        }
        self.not_found = _json_response(_dumps(error), "404 Not Found")


def build_answers(tokens: int, tool_call: tuple[str, str] | None = None) -> Answers:
    return Answers(tokens, tool_call)


class _Conn(asyncio.Protocol):
    def __init__(self, answers: Answers, delay: float) -> None:
        self.answers = answers
        self.delay = delay
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.streaming = False
        self.timer: asyncio.TimerHandle | None = None
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.streaming:
            self._serve()

    def _serve(self) -> None:
        # Answers every complete request in the buffer (pipelining is allowed, and cheap here).
        while self.transport is not None and not self.streaming:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[: end + 2]
            m = _CONTENT_LENGTH.search(head)
            length = int(m.group(1)) if m else 0
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.close_after = _CLOSE.search(head) is not None
            self._answer(head[: head.find(b"\r\n")], body)

    def _answer(self, line: bytes, body: bytes) -> None:
        assert self.transport is not None
        parts = line.split(b" ")
        method, path = parts[0], (parts[1].split(b"?")[0] if len(parts) > 1 else b"/")
        suffix = next((s for s in self.answers.json if path.endswith(s)), None)
        if method == b"GET" and path.endswith(b"/models"):
            self._done(self.answers.models)
        elif method != b"POST" or suffix is None:
            self._done(self.answers.not_found)
        elif self._calls(suffix, body):
            stream = _STREAM_TRUE.search(body)
            assert self.answers.call_json is not None
            self._done(b"".join(self.answers.call_sse) if stream else self.answers.call_json)
        elif not _STREAM_TRUE.search(body):
            self._done(self.answers.json[suffix])
        elif self.delay <= 0:
            self._done(self.answers.sse_whole[suffix])
        else:
            self.streaming = True
            self._paced(self.answers.sse[suffix], 0)

    def _calls(self, suffix: bytes, body: bytes) -> bool:
        """Round one of a scripted tool call: tools offered, no tool result in the request yet."""
        return (
            self.answers.call_json is not None
            and suffix == _CHAT
            and _TOOLS.search(body) is not None
            and _TOOL_RESULT.search(body) is None
        )

    def _paced(self, events: list[bytes], i: int) -> None:
        if self.transport is None:
            return
        if i == len(events) - 1:
            self.streaming = False
            self.timer = None
            self._done(events[i])
            if self.buf:
                self._serve()
            return
        self.transport.write(events[i])
        self.timer = asyncio.get_running_loop().call_later(self.delay, self._paced, events, i + 1)

    def _done(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        if self.close_after:
            self.transport.close()


def _new_loop() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.new_event_loop


async def serve(
    host: str, port: int, tokens: int, delay: float, tool_call: tuple[str, str] | None = None
) -> None:
    answers = build_answers(tokens, tool_call)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Conn(answers, delay), host, port, backlog=4096, reuse_address=True
    )
    calls = f" tool-call={tool_call[0]}" if tool_call else ""
    print(f"fake upstream: http://{host}:{port}/v1 tokens={tokens} delay={delay}s{calls}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fast fake Chat Completions / Open Responses upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--tokens", type=int, default=50, help="text tokens per answer")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds between stream events (0: full speed)"
    )
    parser.add_argument("--tool-call", help="round one of a request offering tools calls this function")
    parser.add_argument("--tool-arguments", default="{}", help="the call's arguments (a JSON object)")
    args = parser.parse_args(argv)
    tool_call = (args.tool_call, args.tool_arguments) if args.tool_call else None
    runner = asyncio.Runner(loop_factory=_new_loop())
    try:
        runner.run(serve(args.host, args.port, args.tokens, args.delay, tool_call))
    except KeyboardInterrupt:
        pass
    finally:
        runner.close()


if __name__ == "__main__":
    main()

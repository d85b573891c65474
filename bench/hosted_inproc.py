"""The shim's own share of a hosted response, in process: the MCP client stubbed, nothing else.

    .venv/bin/python -m bench.hosted_inproc [--requests 500] [--stream] [--plain] [--profile]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python -m bench.hosted_inproc --requests N

``bench.inproc``'s driver (the app called as an ASGI app, no server, no socket) over an upstream
that answers at once as ``bench.fake_upstream --tool-call demo__magic_word`` does: a request
offering tools and holding no tool result is answered with one call, the next round with the
50-token text. The MCP client is replaced at its boundary (``shim.hosted.mcp_client.list_tools``
and ``call_tool``) by functions answering the real test server's tool list and output at once:
a benchmark instrument, so what is measured is what the shim does around the MCP client (the
two upstream rounds, the merged events, the hosted loop, the store, the observability, the
encoding), not the client (``bench/mcp_ops.py`` measures that). ``--plain`` sends the same
request without the tool (one round), for comparison.

As with ``bench.inproc``: the CPU time per response moves with the machine's load, the
instruction count under callgrind does not (run ``--requests 0`` and ``--requests N``, divide the
difference by N). ``--profile`` prints cProfile's top functions by own time; ``--dump FILE``
writes one response's bytes (JSON or SSE) to compare checkouts byte for byte.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import re
import sys
import time
from typing import Any

import httpx

from bench.fake_upstream import chat_answers, chat_tool_call
from bench.inproc import scope_for

_URL = "http://upstream.bench/v1"
MCP_URL = "http://127.0.0.1:9/mcp"  # never connected to: the client is stubbed
LABEL, TOOL, WORD, OUTPUT = "demo", "magic_word", "Paris", "magic-paris-42"
_TOOLS = re.compile(rb'"tools"\s*:\s*\[\s*\{')
_TOOL_RESULT = re.compile(rb'"role"\s*:\s*"tool"')
_SCHEMA = {
    "properties": {"word": {"title": "Word", "type": "string"}},
    "required": ["word"],
    "title": "magic_wordArguments",
    "type": "object",
}


class _Answering(httpx.AsyncBaseTransport):
    """Round one of a request offering tools: one call of the tool; else the 50-token text."""

    def __init__(self, tokens: int, seen: list[bytes] | None = None) -> None:
        whole, events = chat_answers(tokens)
        call_whole, call_events = chat_tool_call(f"{LABEL}__{TOOL}", json.dumps({"word": WORD}))
        self.answers = {False: (whole, b"".join(events)), True: (call_whole, b"".join(call_events))}
        self.seen = seen  # the request bodies, when a test wants them

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        if self.seen is not None:
            self.seen.append(body)
        calls = _TOOLS.search(body) is not None and _TOOL_RESULT.search(body) is None
        whole, sse = self.answers[calls]
        if b'"stream":true' in body:
            headers = [(b"content-type", b"text/event-stream")]
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(sse))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(whole)).encode())]
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(whole))


def mcp_stubs() -> dict[str, Any]:
    """``list_tools`` and ``call_tool`` answering at once what the test MCP server answers."""
    from shim.hosted import mcp_client
    from shim.wire import responses as r

    async def list_tools(server: Any, config: Any) -> list[r.McpToolInfo]:
        return [r.McpToolInfo(name=TOOL, input_schema=dict(_SCHEMA), description="The magic word.")]

    async def call_tool(server: Any, name: str, arguments: dict[str, Any], config: Any) -> Any:
        return mcp_client.ToolResult(f"magic-{arguments['word'].lower()}-42")

    return {"list_tools": list_tools, "call_tool": call_tool}


def stub_mcp_client() -> None:
    from shim.hosted import mcp_client

    for name, stub in mcp_stubs().items():
        setattr(mcp_client, name, stub)


def create(tokens: int, seen: list[bytes] | None = None) -> Any:
    """The app over the answering upstream (the MCP client is not stubbed here)."""
    from shim.http.app import create_app
    from shim.settings import Route, ServerSettings, Settings
    from shim.upstream.client import UpstreamClient

    server = ServerSettings(store="memory://", mcp_allow=(MCP_URL,))
    settings = Settings(server=server, routes=(Route(upstream=_URL),))
    transport = _Answering(tokens, seen)
    client = UpstreamClient(settings.server.timeouts, settings.server.retries, transport=transport)
    return create_app(settings, upstream=client)


def build(tokens: int) -> Any:
    os.environ.setdefault("SHIM_SECRET", "bench-secret-0123456789abcdef0123456789abcdef")
    from shim.http.observability import configure_logging
    from shim.http.runtime_tuning import freeze_startup_objects

    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the access lines are written, to nowhere
    configure_logging(enabled=True)
    app = create(tokens)
    stub_mcp_client()
    freeze_startup_objects()
    return app


def body(hosted: bool, stream: bool) -> bytes:
    out: dict[str, Any] = {
        "model": "fake",
        "input": f"What is the magic word for {WORD}?",
        "max_output_tokens": 64,
        "store": False,
    }
    if hosted:
        out["tools"] = [
            {
                "type": "mcp",
                "server_label": LABEL,
                "server_url": MCP_URL,
                "require_approval": "never",
                "allowed_tools": [TOOL],
            }
        ]
    if stream:
        out["stream"] = True
    return json.dumps(out).encode()


async def answer(app: Any, payload: bytes) -> tuple[int, bytes]:
    """One response's status and body bytes."""
    sent = False
    status = 0
    chunks: list[bytes] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                never.set()

    await app(scope_for("/v1/responses"), receive, send)
    return status, b"".join(chunks)


async def run(app: Any, payload: bytes, requests: int, hosted: bool) -> float:
    for _ in range(50):  # warm-up: caches, first-use imports
        status, data = await answer(app, payload)
        assert status == 200, data[:500]
        assert not hosted or OUTPUT.encode() in data, data[:2000]
    started = time.process_time()
    for _ in range(requests):
        await answer(app, payload)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--plain", action="store_true", help="no hosted tool: one upstream round")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="cProfile's top functions by own time")
    parser.add_argument("--dump", help="write one response's bytes here and stop")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = build(args.tokens)
    payload = body(not args.plain, args.stream)
    loop = asyncio.new_event_loop()
    if args.dump:
        status, data = loop.run_until_complete(answer(app, payload))
        with open(args.dump, "wb") as out:
            out.write(data)
        return 0 if status == 200 else 1
    gc.collect()
    if args.profile:
        loop.run_until_complete(run(app, payload, 50, not args.plain))
        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(run(app, payload, args.requests, not args.plain))
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(45)
        return 0
    seconds = loop.run_until_complete(run(app, payload, args.requests, not args.plain))
    if args.requests:
        print(
            f"{args.requests} responses, {seconds * 1e6 / args.requests:.1f} us CPU each", file=sys.__stdout__
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Record every llama-server fixture: llama.cpp's own server (tests/support/llama_server.py), one command.

The server is the test suite's: llama-server built from the llama-cpp-python sdist, Gemma 3 270M
Q4_K_M, ``--chat-template chatml --jinja``, 2 slots of 4096 tokens. Three sets, all on loopback
through a ``RecordingProxy`` so the bytes kept are exactly what crossed the wire:

1. ``fixtures/responses_over_chat/llamacpp-server/<case>/``: each folder's Open Responses
   ``request.json`` is translated with the shim's ``to_chat_request`` under the
   ``llamacpp-server`` dialect and POSTed to ``/v1/chat/completions``.
2. ``fixtures/chat_over_responses/llama-server/<case>/``: each folder's Chat ``request.json`` goes
   to ``shim serve --upstream-kind responses`` in front of the proxy and llama-server's own
   ``/v1/responses``; the shim's request is checked to be its translation.
3. ``PROBES`` below: hand-written requests sent straight to the server (no shim), the evidence
   for the dialect's settings (``mappings/llamacpp-server.toml``) and for docs/upstreams.md.

Each exchange is written to ``fixtures/_recordings/llamacpp-server/<set>/<name>.request.json``
plus ``<name>.sse`` / ``.json`` (and ``<name>.status`` when not 200); for sets 1 and 2 the answer
is also copied, unchanged, into the case folder as ``upstream.sse`` / ``upstream.json`` (with
``case.toml`` saying ``upstream_status`` for an error). Each request is sent twice and the second
answer kept: at temperature 0 the server repeats itself only from the same prompt-cache state.

    .venv/bin/python scripts/record_llamacpp_server.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shim.cli.embedded import MODEL_ALIAS, free_port
from shim.core.diagnostics import Diagnostics
from shim.dialects.registry import get_dialect
from shim.translate.chat_request import to_chat_request
from shim.translate.responses_request import encode_create_response_body, to_responses_request
from shim.turns.chat_over_responses import ENCRYPTED_INCLUDE
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.chat import decode_chat_request
from shim.wire.responses_decode import decode_create_response_body
from tests.support.llama_server import DIALECT, LlamaServer
from tests.support.recording_proxy import Exchange, RecordingProxy

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
CHAT_CASES = FIXTURES / "responses_over_chat" / DIALECT
RESPONSES_CASES = FIXTURES / "chat_over_responses" / "llama-server"
OUT = FIXTURES / "_recordings" / "llamacpp-server"

M = MODEL_ALIAS
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
ASK = [{"role": "user", "content": "What's the weather like in San Francisco?"}]
CALL = {
    "role": "assistant",
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "San Francisco"}'},
        }
    ],
}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "Foggy, 61 F"}
HELLO = [{"role": "user", "content": "Say hello."}]
TEXT_PARTS = [{"type": "text", "text": "Be terse."}]

# name -> (path, body): requests the shim does not (or no longer) send, straight to the server.
PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    # Chat Completions: which request shapes the server accepts.
    "developer_role": (
        "/chat/completions",
        {
            "model": M,
            "messages": [{"role": "developer", "content": "Be terse."}, *HELLO],
            "max_tokens": 4,
            "temperature": 0,
        },
    ),
    "system_array_content": (
        "/chat/completions",
        {
            "model": M,
            "messages": [{"role": "system", "content": TEXT_PARTS}, *HELLO],
            "max_tokens": 4,
            "temperature": 0,
        },
    ),
    "assistant_array_content": (
        "/chat/completions",
        {
            "model": M,
            "messages": [
                *HELLO,
                {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
                *HELLO,
            ],
            "max_tokens": 4,
            "temperature": 0,
        },
    ),
    "tool_calls_without_content": (
        "/chat/completions",
        {"model": M, "messages": [*ASK, CALL, RESULT], "tools": [TOOL], "max_tokens": 4, "temperature": 0},
    ),
    "tool_calls_null_content": (
        "/chat/completions",
        {
            "model": M,
            "messages": [*ASK, {**CALL, "content": None}, RESULT],
            "tools": [TOOL],
            "max_tokens": 4,
            "temperature": 0,
        },
    ),
    "tool_choice_named_function": (
        "/chat/completions",
        {
            "model": M,
            "messages": ASK,
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "max_tokens": 40,
            "temperature": 0,
        },
    ),
    "max_completion_tokens": (
        "/chat/completions",
        {"model": M, "messages": HELLO, "max_completion_tokens": 3, "temperature": 0},
    ),
    "json_schema": (
        "/chat/completions",
        {
            "model": M,
            "messages": [{"role": "user", "content": "A city as JSON."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "city",
                    "schema": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            },
            "max_tokens": 24,
            "temperature": 0,
        },
    ),
    "include_usage_stream": (
        "/chat/completions",
        {
            "model": M,
            "messages": HELLO,
            "max_tokens": 3,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    "no_include_usage_stream": (
        "/chat/completions",
        {"model": M, "messages": HELLO, "max_tokens": 3, "temperature": 0, "stream": True},
    ),
    "null_temperature": (
        "/chat/completions",
        {"model": M, "messages": HELLO, "max_tokens": 3, "temperature": None},
    ),
    "invalid_json": ("/chat/completions", {"model": M, "messages": "not a list", "max_tokens": 3}),
    "reasoning_format_deepseek": (
        "/chat/completions",
        {
            "model": M,
            "messages": [{"role": "user", "content": "<think>"}],
            "max_tokens": 16,
            "temperature": 0,
            "reasoning_format": "deepseek",
        },
    ),
    # Its own /v1/responses.
    "responses_text": (
        "/responses",
        {"model": M, "input": "Say hello.", "max_output_tokens": 8, "temperature": 0},
    ),
    "responses_text_stream": (
        "/responses",
        {"model": M, "input": "Say hello.", "max_output_tokens": 8, "temperature": 0, "stream": True},
    ),
    "responses_previous_response_id": (
        "/responses",
        {
            "model": M,
            "input": "What is my name?",
            "previous_response_id": "resp_from_an_earlier_turn",
            "max_output_tokens": 8,
        },
    ),
    "responses_store_true": (
        "/responses",
        {"model": M, "input": "Say hello.", "store": True, "max_output_tokens": 4, "temperature": 0},
    ),
    "responses_get": ("/responses/resp_unknown", {}),
    "responses_context_overflow_stream": (
        "/responses",
        {"model": M, "input": "word " * 5000, "max_output_tokens": 8, "stream": True},
    ),
}


def settle(proxy: RecordingProxy) -> Exchange:
    """The one exchange the proxy filed (it does so after relaying the last byte)."""
    for _ in range(200):
        if proxy.exchanges:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    exchanges = proxy.exchanges
    if len(exchanges) != 1:
        raise SystemExit(f"expected one upstream call, saw {len(exchanges)}")
    return exchanges[0]


def send(url: str, path: str, data: bytes | None) -> None:
    method = "GET" if data is None else "POST"
    headers = {"content-type": "application/json"}
    with httpx.stream(method, f"{url}{path}", content=data, headers=headers, timeout=300) as response:
        response.read()


def save(folder: str, name: str, exchange: Exchange) -> bytes:
    out = OUT / folder
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{name}.*"):
        old.unlink()
    suffix = ".sse" if exchange.content_type.startswith("text/event-stream") else ".json"
    if exchange.request:
        (out / f"{name}.request.json").write_bytes(exchange.request)
    (out / f"{name}{suffix}").write_bytes(exchange.answer)
    if exchange.status != 200:
        (out / f"{name}.status").write_text(f"{exchange.status}\n")
    print(
        f"{folder}/{name}: {exchange.status} {suffix} {len(exchange.answer)} bytes: {exchange.answer[:200]!r}"
    )
    return exchange.answer


def copy_into(case: Path, exchange: Exchange) -> None:
    for old in [*case.glob("upstream.*"), case / "case.toml"]:
        old.unlink(missing_ok=True)
    stream = exchange.content_type.startswith("text/event-stream")
    (case / ("upstream.sse" if stream else "upstream.json")).write_bytes(exchange.answer)
    if exchange.status >= 400:
        (case / "case.toml").write_text(f"upstream_status = {exchange.status}\n")


def twice(proxy: RecordingProxy, path: str, data: bytes | None) -> Exchange:
    for _ in range(2):
        proxy.clear()
        send(proxy.url, path, data)
        exchange = settle(proxy)
    return exchange


# --- the three sets -----------------------------------------------------------------------------


def chat_request(case: Path) -> bytes:
    body = decode_create_response_body((case / "request.json").read_bytes())
    assert body.model is not None and body.input is not None
    items: list[r.ItemParam] = (
        [r.MessageItemParam(role="user", content=body.input)]
        if isinstance(body.input, str)
        else list(body.input)
    )
    request = to_chat_request(
        body,
        items,
        model=body.model,
        dialect=get_dialect(DIALECT),
        diags=Diagnostics("ignore"),
        stream=bool(body.stream),
    )
    return c.encode_chat_request(request)


def record_chat(proxy: RecordingProxy, case: Path) -> None:
    exchange = twice(proxy, "/chat/completions", chat_request(case))
    save("responses_over_chat", case.name, exchange)
    copy_into(case, exchange)


@contextmanager
def shim(upstream: str, workdir: str) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "shim", "serve", "--upstream", upstream, "--upstream-kind", "responses"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--store", "memory://"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIM_")}
    env |= {"SHIM_SECRET": "record-llama-server", "SHIM_DATA_DIR": workdir}
    proc = subprocess.Popen(argv, env=env, cwd=ROOT)
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit(f"shim serve exited with {proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def record_responses(shim_v1: str, proxy: RecordingProxy, case: Path) -> None:
    raw = (case / "request.json").read_bytes()
    req = decode_chat_request(raw)
    expected = to_responses_request(
        req, model=req.model, diags=Diagnostics("ignore"), stream=bool(req.stream)
    )
    # The server also asks for encrypted reasoning, to remember it for the next turn.
    expected.include = [*(expected.include or []), ENCRYPTED_INCLUDE]
    exchange = None
    for _ in range(2):
        proxy.clear()
        send(shim_v1, "/chat/completions", raw)
        exchange = settle(proxy)
    assert exchange is not None
    if json.loads(exchange.request) != json.loads(encode_create_response_body(expected)):
        raise SystemExit(f"{case.name}: the shim sent {exchange.request[:300]!r}, not the translation")
    save("chat_over_responses", case.name, exchange)
    copy_into(case, exchange)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="record only these names (case or probe)")
    args = parser.parse_args()
    only = set(args.only)

    def wanted(name: str) -> bool:
        return not only or name in only

    chat_cases = [
        p for p in sorted(CHAT_CASES.iterdir()) if (p / "request.json").is_file() and wanted(p.name)
    ]
    responses_cases = [
        p for p in sorted(RESPONSES_CASES.iterdir()) if (p / "request.json").is_file() and wanted(p.name)
    ]
    probes = {name: probe for name, probe in PROBES.items() if wanted(name)}
    with (
        tempfile.TemporaryDirectory(prefix="record-llama-server-") as tmp,
        LlamaServer(log_path=Path(tmp) / "llama-server.log") as server,
        RecordingProxy(server.base_url) as proxy,
    ):
        for name, (path, body) in probes.items():
            save("probes", name, twice(proxy, path, json.dumps(body).encode() if body else None))
        for case in chat_cases:
            record_chat(proxy, case)
        if responses_cases:
            with shim(proxy.url, tmp) as shim_v1:
                for case in responses_cases:
                    record_responses(shim_v1, proxy, case)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Micro-benchmark of the translators: a 2,000-token stream through decoder → reader → writer → encoder.

    .venv/bin/python bench/translate.py [--tokens 2000] [--runs 7]

Forward: Chat SSE bytes (upstream) → Open Responses SSE bytes (client).
Reverse: Open Responses SSE bytes (upstream) → Chat SSE bytes (client).
Reports translated chunks per second of CPU time (``time.thread_time``: a neighbour on the same
core cannot fake or hide it; the median of the runs), and of wall time for reference. Issue 18's
target: 400,000 chunks/s both ways, by CPU time. Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import msgspec

from shim.dialects.registry import get_dialect
from shim.ids import CountingIds, fixed_clock
from shim.translate.chat_over_responses import ChatChoiceDriver
from shim.translate.pipeline import ChatToResponsesStream
from shim.wire import chat as c
from shim.wire import responses as r

# bench/run.sh runs this script on the baseline's code too (deb5485): each checkout goes through
# its own server's path, so what a checkout lacks falls back to what the server did there.
try:
    from shim.sse import encode_tagged
except ImportError:  # before issue 18's fourth round
    _enc = msgspec.json.Encoder()

    def encode_tagged(event: Any) -> bytes:
        tag = str(type(event).__struct_config__.tag).encode()
        return b"event: " + tag + b"\ndata: " + _enc.encode(event) + b"\n\n"


def chat_stream(tokens: int) -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    ]
    out += [
        {**base, "choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}]}
        for i in range(tokens)
    ]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": tokens + 5},
        }
    )
    return (
        b"".join(b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in out)
        + b"data: [DONE]\n\n"
    )


def responses_stream(tokens: int) -> bytes:
    def ev(kind: str, **fields: object) -> bytes:
        body = json.dumps({"type": kind, **fields}, separators=(",", ":")).encode()
        return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"

    resource = {
        "id": "resp_b",
        "object": "response",
        "created_at": 1,
        "model": "m",
        "status": "in_progress",
        "output": [],
    }
    item = {"type": "message", "id": "msg_b", "status": "in_progress", "role": "assistant", "content": []}
    out = [ev("response.created", sequence_number=0, response=resource)]
    out.append(ev("response.output_item.added", sequence_number=1, output_index=0, item=item))
    for i in range(tokens):
        out.append(
            ev(
                "response.output_text.delta",
                sequence_number=i + 2,
                item_id="msg_b",
                output_index=0,
                content_index=0,
                delta=f" tok{i}",
                logprobs=[],
            )
        )
    done = {
        **resource,
        "status": "completed",
        "usage": {"input_tokens": 5, "output_tokens": tokens, "total_tokens": tokens + 5},
    }
    out.append(ev("response.completed", sequence_number=tokens + 2, response=done))
    return b"".join(out) + b"data: [DONE]\n\n"


def reverse(chunks: list[bytes]) -> int:
    stream = ChatChoiceDriver(completion_id="chatcmpl-b", created=1, model="m")
    n = 0
    feed_sse = getattr(stream, "feed_sse", None)  # what the server sends (``turns/chat_over_responses.py``)
    for chunk in chunks:
        if feed_sse is not None:
            n += len(feed_sse(chunk))
        else:
            for out in stream.feed(chunk):
                n += len(b"data: " + c.encode_chunk(out) + b"\n\n")
    for out in stream.finish():
        n += len(c.encode_chunk(out))
    return n


def split(data: bytes, size: int = 256) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def forward(chunks: list[bytes]) -> int:
    template = r.ResponseResource(id="resp_bench", created_at=1, model="m")
    stream = ChatToResponsesStream(template, get_dialect("openai"), ids=CountingIds(), clock=fixed_clock())
    n = 0
    for ev in stream.start():
        n += len(encode_tagged(ev))
    # What the server sends (``http/responses.py``'s ``_sse``): runs of text deltas come as
    # their SSE bytes already, other events as structs.
    feed = getattr(stream, "feed_framed", stream.feed)
    for chunk in chunks:
        n += len(b"".join([ev if isinstance(ev, bytes) else encode_tagged(ev) for ev in feed(chunk)]))
    for ev in stream.finish():
        n += len(encode_tagged(ev))
    return n


def measure(fn, arg, tokens: int, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(chunks per CPU second, chunks per wall second), medians of ``runs``."""
    cpu, wall = [], []
    for _ in range(runs):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn(arg)
        c1, t1 = time.thread_time(), time.perf_counter()
        cpu.append(tokens / (c1 - c0))
        wall.append(tokens / (t1 - t0))
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    chunks = split(chat_stream(args.tokens))
    for name, fn, data in (
        ("forward  chat SSE -> responses SSE", forward, chunks),
        ("reverse  responses SSE -> chat SSE", reverse, split(responses_stream(args.tokens))),
    ):
        cpu, wall = measure(fn, data, args.tokens, args.runs)
        print(
            f"{name}: {cpu:,.0f} chunks per CPU second, {wall:,.0f} per wall second "
            f"({args.tokens} tokens, median of {args.runs})"
        )


if __name__ == "__main__":
    main()

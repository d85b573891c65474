"""What continuing a ``previous_response_id`` chain costs, against sending the whole history.

    .venv/bin/python bench/store_chain.py [--depths 1,50,200] [--runs 200] [--redis redis://...]

For each backend (diskcache in a temp dir; Redis from ``--redis`` or a private ``redis-server``
started here without persistence; memory as the no-IO reference) the in-process app, over an
upstream that answers instantly, first builds one chain of stored turns. Then, per depth:

* chained: ``{"input": "next", "previous_response_id": tip}``, stored (one read + one write);
* full: the same turn with the whole history as ``input`` and ``store: false`` (no store IO);
* store: ``ResponseStore.load`` + ``save`` of that depth's record alone, the store's own share.

Medians and best runs in milliseconds; "added" = chained - full. Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec

from shim.cli.embedded import free_port
from shim.http.app import create_app
from shim.http.state import app_state
from shim.settings import Route, ServerSettings, Settings
from shim.store.repository import ResponseStore, scope_of
from shim.upstream.client import UpstreamClient

SECRET = "bench-secret"
QUESTION = "Please explain the next step of the plan in a few sentences, with one example. " * 5
ANSWER = "Here is the next step, explained briefly, with an example that shows how it works. " * 5


def _completion(request: httpx.Request) -> httpx.Response:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }
    return httpx.Response(200, json=body)


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("bench: no redis-server on PATH (scripts/install_redis.sh) and no --redis URL")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    proc = subprocess.Popen([*argv, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("bench: redis-server did not start")


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    gc.collect()  # start each block with no garbage pending, so its collections are its own
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(samples: list[float]) -> tuple[float, float]:
    """(median, best): on a shared machine the best run is the cost without scheduling delays."""
    return statistics.median(samples), min(samples)


async def bench_backend(name: str, url: str, depths: list[int], runs: int) -> list[dict[str, Any]]:
    settings = Settings(
        server=ServerSettings(store=url, diagnostics="ignore"),
        routes=(Route(upstream="http://upstream.bench/v1"),),
    )
    client = UpstreamClient(settings.server.timeouts, 0, transport=httpx.MockTransport(_completion))
    app = create_app(settings, upstream=client)
    store: ResponseStore = app_state(app).turns.store
    scope = scope_of(SECRET.encode(), None)
    rows = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://shim") as http:

        async def post(body: dict[str, Any]) -> dict[str, Any]:
            answer = await http.post("/v1/responses", content=json.dumps(body))
            assert answer.status_code == 200, answer.text
            result: dict[str, Any] = answer.json()
            return result

        tips: dict[int, str] = {}
        previous: str | None = None
        for depth in range(1, max(depths) + 1):
            body: dict[str, Any] = {"model": "m", "input": f"{depth}: {QUESTION}"}
            if previous:
                body["previous_response_id"] = previous
            previous = (await post(body))["id"]
            tips[depth] = previous
        for depth in depths:
            record = await store.load(scope, tips[depth])
            assert record is not None
            history = json.loads(msgspec.json.encode(record.history))
            chained = {"model": "m", "input": QUESTION, "previous_response_id": tips[depth]}
            full = {"model": "m", "input": [*history, {"role": "user", "content": QUESTION}], "store": False}
            await post(chained), await post(full)  # warm-up
            a: list[float] = []
            b: list[float] = []
            for _ in range(runs // 10):  # interleaved in blocks so drift hits both alike
                a += await timed(lambda body=chained: post(body), 10)  # type: ignore[misc]
                b += await timed(lambda body=full: post(body), 10)  # type: ignore[misc]
            size = len(msgspec.msgpack.encode(record))
            copy = msgspec.structs.replace(
                record, resource=msgspec.structs.replace(record.resource, id="resp_x")
            )

            async def load_and_save(copy: Any = copy, tip: str = tips[depth]) -> None:
                await store.load(scope, tip)
                await store.save(scope, copy)

            s = await timed(load_and_save, runs)
            rows.append(
                {
                    "backend": name,
                    "depth": depth,
                    "record_kb": size / 1024,
                    "chained": summary(a),
                    "full": summary(b),
                    "added": (statistics.median(a) - statistics.median(b), min(a) - min(b)),
                    "store": summary(s),
                }
            )
    await store.backend.aclose()
    await client.aclose()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="1,50,200")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--redis", help="an existing Redis URL (default: start a private redis-server)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # per-request access logs would be measured too
    depths = [int(d) for d in args.depths.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SHIM_SECRET"] = SECRET
        os.environ["SHIM_DATA_DIR"] = str(Path(tmp) / "data")
        redis_proc = None
        redis_url = args.redis
        if redis_url is None:
            redis_proc, redis_url = start_redis(Path(tmp))
        try:
            backends = {
                "memory": "memory://",
                "diskcache": f"diskcache://{Path(tmp) / 'store'}",
                "redis": f"{redis_url}?prefix=bench{os.getpid()}:",
            }
            rows = []
            for name, url in backends.items():
                rows += await bench_backend(name, url, depths, args.runs)
        finally:
            if redis_proc is not None:
                redis_proc.terminate()
                redis_proc.wait()
    print(f"load average before: {LOAD_BEFORE}; after: {os.getloadavg()}; runs per figure: {args.runs}")
    print("ms, median / best run")
    print("| backend | depth | record | chained | full history | added | store read+write |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [f"{row[k][0]:.2f} / {row[k][1]:.2f}" for k in ("chained", "full")]
        cells.append(f"{row['added'][0]:+.2f} / {row['added'][1]:+.2f}")
        cells.append(f"{row['store'][0]:.2f} / {row['store'][1]:.2f}")
        print(
            f"| {row['backend']} | {row['depth']} | {row['record_kb']:.0f} KiB | " + " | ".join(cells) + " |"
        )


LOAD_BEFORE = os.getloadavg()

if __name__ == "__main__":
    asyncio.run(main())

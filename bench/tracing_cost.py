"""CPU cost per request of traces and per-key rate limits (issue 20), back to back in one process.

    python bench/tracing_cost.py --requests 1000 --rounds 5

A shim app (as ``create_app`` builds it, memory store) over the fault upstream on loopback, driven
in-process over ASGI: each round runs every mode one after another and reports the process's CPU
time per request (``time.process_time``: every thread, so the span exporter's thread counts too).
Modes: ``off`` (runs on a checkout from before traces too: ``PYTHONPATH=<it>``, ``--modes off``); ``traces`` (the OTLP/HTTP exporter in batches to a receiver in another process);
``limits`` (requests and tokens per minute in memory, so every upstream answer is read for its
usage). Medians over the rounds; the machine is shared, so compare within a round.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.append(str(Path(__file__).resolve().parents[1]))  # PYTHONPATH wins: another checkout

try:
    from shim import tracing
except ImportError:  # a checkout from before traces (``--modes off`` measures it)
    tracing = None  # type: ignore[assignment]
from shim.http.app import create_app
from shim.http.state import app_state
from shim.settings import Route, ServerSettings, Settings
from tests.support.fault_upstream import FaultUpstream

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


async def _round(upstream: str, mode: str, requests: int, stream: bool) -> float:
    extra: dict[str, Any] = {}
    if mode == "limits":
        from shim.settings import RateLimits

        extra["rate_limits"] = RateLimits(requests_per_minute=10**9, tokens_per_minute=10**12)
    settings = Settings(server=ServerSettings(store="memory://", **extra), routes=(Route(upstream=upstream),))
    app = create_app(settings)
    active = tracing.active() if tracing is not None and mode == "traces" else None
    headers = {"authorization": "Bearer sk-bench"}
    body = {"model": "ok", "input": "hi", "stream": stream}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://shim") as client:
        for _ in range(20):  # warm up
            await client.post("/v1/responses", json=body, headers=headers)
        started = time.process_time()
        for _ in range(requests):
            answer = await client.post("/v1/responses", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
        if active is not None:
            active.provider.force_flush()  # type: ignore[attr-defined]
        spent = time.process_time() - started
    await app_state(app).turns.upstream.aclose()
    if active is not None and tracing is not None:
        active.shutdown()
        tracing.use(None)
    return spent / requests * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", default="off,traces,limits", help="comma-separated: off, traces, limits")
    args = parser.parse_args()
    os.environ.setdefault("SHIM_SECRET", "bench-secret-0123456789abcdef0123456789abcdef")
    os.environ.setdefault("SHIM_DATA_DIR", "/tmp/shim-bench-tracing")
    logging.disable(logging.WARNING)  # no access or httpx lines: the same in every mode, and quiet
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    modes = tuple(args.modes.split(","))
    try:
        async with FaultUpstream() as upstream:
            for stream in (False, True):
                seen: dict[str, list[float]] = {m: [] for m in modes}
                for _ in range(args.rounds):
                    for mode in modes:
                        if mode == "traces":
                            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
                        seen[mode].append(await _round(upstream.url, mode, args.requests, stream))
                        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
                off = statistics.median(seen["off"])
                for mode in modes:
                    median = statistics.median(seen[mode])
                    runs = ", ".join(f"{v:.0f}" for v in seen[mode])
                    print(
                        f"{'sse ' if stream else 'json'} {mode:7} median {median:6.0f} us CPU/request "
                        f"({median - off:+5.0f}, {100 * (median / off - 1):+5.1f}%)  runs: {runs}"
                    )
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    asyncio.run(main())

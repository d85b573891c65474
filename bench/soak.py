"""Soak: many concurrent streams for a while, a fifth of the clients hanging up at random points.

    .venv/bin/python bench/soak.py --streams 500 --seconds 60 --disconnect 0.2

Starts the fault upstream (``tests/support/fault_upstream.py``, model ``soak``: 40 pieces,
``--interval`` apart) and ``shim serve`` as separate processes on loopback, then keeps ``--streams`` clients
streaming ``POST /v1/responses`` for ``--seconds``. Checks, and prints:

- clients that did not hang up: every stream ends with ``response.completed`` (no errors);
- after the load: no upstream connection still busy; the shim's open file descriptors back to
  their starting count plus the idle keep-alive connections its pool holds to the upstream (±5);
  the shim's resident memory within 10 % of its level after warm-up.

Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: ``bench`` importable

from bench.servers import PY, ROOT, free_port


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up")
            await asyncio.sleep(0.2)


async def memtrace_dump(args: argparse.Namespace, pid: int) -> None:
    """Ask the traced shim for a snapshot and wait until it is written (no-op without --memtrace)."""
    if not args.memtrace:
        return
    stats = Path(args.memtrace) / "stats.jsonl"
    before = len(stats.read_text().splitlines()) if stats.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    while not stats.exists() or len(stats.read_text().splitlines()) == before:
        await asyncio.sleep(0.5)


class Tally:
    def __init__(self) -> None:
        self.completed = 0
        self.hung_up = 0
        self.failed: list[str] = []


async def one_stream(client: httpx.AsyncClient, tally: Tally, disconnect: float, interval: float) -> None:
    body = {"model": f"soak:{interval}", "input": "go", "stream": True}
    hang_up_after = random.randint(1, 30) if random.random() < disconnect else None
    seen = 0
    text = ""
    try:
        async with client.stream("POST", "/v1/responses", json=body) as response:
            if response.status_code != 200:
                tally.failed.append(f"status {response.status_code}")
                return
            async for chunk in response.aiter_text():
                text += chunk
                seen += chunk.count("\n\n")
                if hang_up_after is not None and seen >= hang_up_after:
                    tally.hung_up += 1
                    return  # leaving the block closes the connection mid-stream
    except httpx.HTTPError as exc:
        tally.failed.append(f"{exc.__class__.__name__}: {exc}")
        return
    if "event: response.completed" in text and text.endswith("data: [DONE]\n\n"):
        tally.completed += 1
    else:
        tally.failed.append("stream ended without response.completed: " + text[-200:])


async def client_loop(base: str, until: float, tally: Tally, disconnect: float, interval: float) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        while time.monotonic() < until:
            await one_stream(client, tally, disconnect, interval)


async def soak(args: argparse.Namespace) -> int:
    up_port, shim_port = free_port(), free_port()
    env = {
        **os.environ,
        "SHIM_ACCESS_LOG": "0",
        "SHIM_SECRET": "soak-secret-0123456789abcdef0123456789abcdef",
        "PYTHONPATH": str(ROOT),
    }
    upstream = subprocess.Popen([PY, str(ROOT / "tests/support/fault_upstream.py"), str(up_port)], env=env)
    serve = [
        "serve",
        "--upstream",
        f"http://127.0.0.1:{up_port}/v1",
        "--port",
        str(shim_port),
        "--store",
        args.store,
    ]
    # --memtrace: the shim under tracemalloc (bench/memtrace.py), a snapshot after warm-up and each phase
    launcher = [str(ROOT / "bench/memtrace.py"), "serve", args.memtrace] if args.memtrace else ["-m", "shim"]
    shim = subprocess.Popen([PY, *launcher, *serve], env=env)
    base = f"http://127.0.0.1:{shim_port}"
    try:
        await wait_http(f"http://127.0.0.1:{up_port}/_stats")
        await wait_http(f"{base}/healthz")
        fd_start = fds(shim.pid)
        # Warm-up at full concurrency: imports, caches, pools and the allocator's arenas reach their
        # working size before the memory baseline is taken.
        warm = Tally()
        warm_until = time.monotonic() + args.warmup
        await asyncio.gather(
            *(client_loop(base, warm_until, warm, 0.0, args.interval) for _ in range(args.streams))
        )
        await asyncio.sleep(3)
        await memtrace_dump(args, shim.pid)
        rss_start = rss_mib(shim.pid)
        tally = Tally()
        started = time.monotonic()
        peak = {"rss": rss_start, "fds": fd_start}

        async def sample() -> None:
            while True:
                peak["rss"] = max(peak["rss"], rss_mib(shim.pid))
                peak["fds"] = max(peak["fds"], fds(shim.pid))
                await asyncio.sleep(1)

        sampler = asyncio.create_task(sample())
        after_phase = []
        for _ in range(
            args.phases
        ):  # more than one phase tells a leak (grows each time) from a high-water mark
            until = time.monotonic() + args.seconds
            await asyncio.gather(
                *(
                    client_loop(base, until, tally, args.disconnect, args.interval)
                    for _ in range(args.streams)
                )
            )
            await asyncio.sleep(3)
            after_phase.append(round(rss_mib(shim.pid), 1))
            await memtrace_dump(args, shim.pid)
        sampler.cancel()
        elapsed = time.monotonic() - started
        await asyncio.sleep(3)  # let the last closes land
        async with httpx.AsyncClient() as c:
            stats = json.loads((await c.get(f"http://127.0.0.1:{up_port}/_stats")).content)
        fd_end, rss_end = fds(shim.pid), rss_mib(shim.pid)
        report = {
            "streams": args.streams,
            "seconds": round(elapsed, 1),
            "completed": tally.completed,
            "hung_up": tally.hung_up,
            "errors": len(tally.failed),
            "fds": [fd_start, peak["fds"], fd_end],
            "rss_mib": [round(rss_start, 1), round(peak["rss"], 1), round(rss_end, 1)],
            "rss_mib_after_each_phase": after_phase,
            "upstream_connections_after": {
                "busy": stats["busy_connections"],
                "idle": stats["open_connections"] - stats["busy_connections"],
            },
        }
        print(json.dumps(report))
        for line in tally.failed[:10]:
            print("  error:", line)
        ok = (
            not tally.failed
            and fd_end - fd_start <= stats["open_connections"] + 5
            and stats["busy_connections"] == 0
            and rss_end <= rss_start * 1.10
        )
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        for proc in (shim, upstream):
            proc.terminate()
            proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--disconnect", type=float, default=0.2)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between upstream pieces")
    parser.add_argument("--phases", type=int, default=1, help="repeat the load; RSS is printed after each")
    parser.add_argument("--store", default="none", help="store URL; memory:// grows with every response")
    parser.add_argument("--warmup", type=float, default=10, help="seconds at full concurrency before")
    parser.add_argument("--memtrace", help="run the shim under tracemalloc, snapshots in this directory")
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

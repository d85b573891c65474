"""Instructions per request of a whole ``shim serve`` (uvicorn, the app, aiohttp), by callgrind.

    .venv/bin/python -m bench.serve_ir [--root CHECKOUT] [--clients 64] [--requests 1000]

The server runs under ``valgrind --tool=callgrind`` on core 0, the fake upstream and this
driver on core 1 (as in ``bench/run.sh``). After a warm-up the counters are zeroed
(``callgrind_control -z``), exactly ``--requests`` ``POST /v1/responses`` (50-token JSON
answers over a Chat upstream) are sent over ``--clients`` keep-alive connections, and the
counters are dumped (``callgrind_control -d``); then the idle server is counted for as long
again (uvicorn wakes every 0.1 s, and under valgrind on a busy machine a run lasts minutes) and
that is taken off. The rest over the requests is the count per request, the same whatever the
machine's load; the kernel's work (the socket calls) is not in it. ``bench.inproc`` counts the
app alone, without uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import FORWARD
from bench.servers import PY, ROOT, Target, free_port, start, start_upstream

__all__ = ["count"]


async def _client(port: int, request: bytes, n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(n):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"not a 200: {head[:200]!r}")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
    finally:
        writer.close()


async def _load(port: int, path: str, body: bytes, clients: int, requests: int) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer bench\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    request = head + body
    each, extra = divmod(requests, clients)
    await asyncio.gather(*(_client(port, request, each + (i < extra)) for i in range(clients)))


def _dump_total(pid: int, out: Path) -> int:
    before = set(out.parent.glob(out.name + "*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    new = sorted(set(out.parent.glob(out.name + "*")) - before)
    for line in new[-1].read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError("no totals in the callgrind dump")


def count(root: Path, clients: int, requests: int, warmup: int) -> float:
    path, text, _ = FORWARD.call(Target("shim", "shim"), False)
    body = text.encode()
    os.sched_setaffinity(0, {1})
    upstream = start_upstream("1", 50, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        port = free_port()
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", PY, "-m", "shim", "serve"]
        cmd += ["--upstream", f"http://127.0.0.1:{upstream.port}/v1", "--dialect", "openai", "--kind", "chat"]
        cmd += ["--port", str(port), "--store", "memory://"]
        env = {
            "SHIM_DATA_DIR": tmp,
            "SHIM_SECRET": "bench-secret-0123456789abcdef0123456789abcdef",
            "SHIM_LOG_LEVEL": "warning",
            "PYTHONHASHSEED": "0",
            "PYTHONPATH": str(root),
        }
        server = start("shim", cmd, port, "0", env=env, probe=(path, body), timeout=600.0, cwd=root)
        try:
            asyncio.run(_load(port, path, body, clients, warmup))
            subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
            started = time.monotonic()
            asyncio.run(_load(port, path, body, clients, requests))
            total = _dump_total(server.pid, out)
            # the idle server's own ticks over as long (uvicorn wakes every 0.1 s: under
            # valgrind, on a busy machine, a run lasts minutes), taken off the count
            waited = time.monotonic() - started
            subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
            time.sleep(waited)
            total -= _dump_total(server.pid, out)
        finally:
            server.stop()
            upstream.stop()
    return total / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout of the shim (default: this one)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args(argv)
    per = count(args.root.resolve(), args.clients, args.requests, args.warmup)
    print(json.dumps({"root": str(args.root), "clients": args.clients, "requests": args.requests, "ir": per}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

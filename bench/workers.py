"""One worker against two (issue 18's scaling target), with what each worker did.

    .venv/bin/python -m bench.workers --seconds 5 --runs 3

For each worker count: the fake upstream on ``--load-cpus``, ``shim serve --workers N`` started
as the harness starts ``shim-1w`` / ``shim-2w`` (one worker on ``--server-cpus``, more on every
core), then scenario 2 (64 ``wrk`` clients, 50-token JSON answers) and scenario 3 (16 streaming
clients, 200-chunk answers). Beside req/s it reports, per worker process, the CPU seconds it used
and the established connections it held half-way through the run (``ss -tnp``), and the CPU
seconds of the upstream and the load generator: the figures that show whether the kernel spread
the clients' kept-alive connections over the workers, and how much of the two cores was left for
them. Prints one JSON object per run and a summary table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from bench.harness import FORWARD
from bench.load import run_streams, run_wrk
from bench.procstat import tree
from bench.servers import Proc, Target, start_target, start_upstream

__all__ = ["connections_by_pid", "main"]

_TICKS = 100  # /proc stat ticks per second (os.sysconf("SC_CLK_TCK") on Linux)
_PID = re.compile(r"pid=(\d+)")


def connections_by_pid(port: int) -> Counter[int]:
    """Established TCP connections on local port ``port``, counted by the process that holds them."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: Counter[int] = Counter()
    for line in out.splitlines():
        for pid in set(_PID.findall(line)):
            counts[int(pid)] += 1
    return counts


def _cpu_by_pid(root: int) -> dict[int, float]:
    out = {}
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


class _Spread:
    """Samples connections per pid through a run (keeping the fullest sample: the load generator
    may take a while to connect on a busy machine), and CPU per pid over the whole run."""

    def __init__(self, server: Proc, seconds: float) -> None:
        self.server, self.seconds = server, seconds
        self.connections: Counter[int] = Counter()
        self._before: dict[int, float] = {}
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        deadline = time.monotonic() + self.seconds * 0.9
        while time.monotonic() < deadline:
            time.sleep(self.seconds / 10)
            sample = connections_by_pid(self.server.port)
            if sample.total() >= self.connections.total():
                self.connections = sample

    def __enter__(self) -> _Spread:
        self._before = _cpu_by_pid(self.server.pid)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join()
        after = _cpu_by_pid(self.server.pid)
        self.cpu = {pid: round(s - self._before.get(pid, 0.0), 2) for pid, s in after.items()}

    def workers(self) -> list[dict[str, Any]]:
        """Every process of the server tree that used CPU or held a connection, busiest first."""
        pids = {p for p, s in self.cpu.items() if s >= 0.05} | set(self.connections)
        rows = [{"pid": p, "cpu_s": self.cpu.get(p, 0.0), "conns": self.connections.get(p, 0)} for p in pids]
        return sorted(rows, key=lambda r: (-r["conns"], -r["cpu_s"]))


def _one(
    args: argparse.Namespace, workers: int, scenario: str, data_dir: Path, root: Path | None
) -> dict[str, Any]:
    target = Target(f"{'base' if root else 'shim'}-{workers}w", "shim", workers=workers, root=root)
    cpus = args.all_cpus if workers > 1 else args.server_cpus
    tokens = 50 if scenario == "json" else 200
    upstream = start_upstream(args.load_cpus, tokens, 0.0)
    path, body, api = FORWARD.call(target, stream=scenario == "streams")
    probe_path, probe_body, _ = FORWARD.call(target, stream=False)
    try:
        url = f"http://127.0.0.1:{upstream.port}/v1"
        server = start_target(target, url, "chat", cpus, (probe_path, probe_body.encode()), data_dir)
        try:
            base = f"http://127.0.0.1:{server.port}{path}"
            if scenario == "json":
                run_wrk(base, body, 8, 1, args.load_cpus, server, upstream)  # warm-up, as the harness
                measure = partial(run_wrk, base, body, 64, args.seconds, args.load_cpus, server, upstream)
            else:
                run_streams(base, body, api, 4, args.load_cpus, server, upstream, duration=1)
                measure = partial(
                    run_streams, base, body, api, 16, args.load_cpus, server, upstream, duration=args.seconds
                )
            with _Spread(server, args.seconds) as spread:
                result = measure()
        finally:
            server.stop()
    finally:
        upstream.stop()
    rate = result["req_per_s"] if scenario == "json" else result["streams_per_s"]
    return {
        "target": target.name,
        "workers": workers,
        "scenario": scenario,
        "rate": rate,
        "server_cpu_s": result["server_cpu_s"],
        "upstream_cpu_s": result["upstream_cpu_s"],
        "load_cpu_s": result["load_cpu_s"],
        "wall_s": result["wall_s"],
        "errors": _errors(result["errors"]),
        "per_process": spread.workers(),
    }


async def _burst(port: int, clients: int) -> list[int]:
    """Open ``clients`` connections at once (as the stream client does), one request on each:
    how many each worker holds, most first."""
    conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(clients)))
    for _, writer in conns:
        writer.write(b"GET /readyz HTTP/1.1\r\nhost: bench\r\n\r\n")
    for reader, _ in conns:
        await reader.readuntil(b"\r\n\r\n")
    counts = connections_by_pid(port)
    for _, writer in conns:
        writer.close()
    return sorted(counts.values(), reverse=True)


def _bursts(args: argparse.Namespace, data_dir: Path, root: Path | None) -> Counter[str]:
    """``--bursts N``: the splits of N bursts of ``--clients`` connections over two workers."""
    target = Target(f"{'base' if root else 'shim'}-2w", "shim", workers=2, root=root)
    upstream = start_upstream(args.load_cpus, 50, 0.0)
    probe_path, probe_body, _ = FORWARD.call(target, stream=False)
    splits: Counter[str] = Counter()
    try:
        url = f"http://127.0.0.1:{upstream.port}/v1"
        server = start_target(target, url, "chat", args.all_cpus, (probe_path, probe_body.encode()), data_dir)
        try:
            for _ in range(args.bursts):
                split = asyncio.run(_burst(server.port, args.clients))
                splits["/".join(map(str, split + [0] * (2 - len(split))))] += 1
                time.sleep(0.2)  # the closed connections are gone before the next burst
        finally:
            server.stop()
    finally:
        upstream.stop()
    return splits


def _errors(errors: object) -> float:
    """wrk counts errors; the stream client lists them by kind."""
    return sum(errors.values()) if isinstance(errors, dict) else float(errors)  # type: ignore[arg-type]


def _row(runs: list[dict[str, Any]]) -> str:
    med = {
        k: statistics.median(r[k] for r in runs)
        for k in ("rate", "server_cpu_s", "upstream_cpu_s", "load_cpu_s")
    }
    spread = " | ".join(
        "; ".join(
            f"{w['conns']} conn {w['cpu_s']:.1f} s"
            for w in r["per_process"]
            if w["conns"] or w["cpu_s"] >= 0.5
        )
        for r in runs
    )
    first = runs[0]
    return (
        f"| {first['scenario']} | {first['target']} | {med['rate']:,.0f} | {med['server_cpu_s']:.1f} / "
        f"{med['upstream_cpu_s']:.1f} / {med['load_cpu_s']:.1f} | {spread} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--scenarios", default="json,streams", help="json (64 clients), streams (16 clients)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    parser.add_argument("--runs", type=int, default=1, help="runs of each pair (alternating)")
    parser.add_argument(
        "--base", type=Path, help="another checkout (git worktree add /tmp/base REV): its --workers 2 too"
    )
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--load-cpus", default="1")
    parser.add_argument("--all-cpus", default="0-1")
    parser.add_argument("--bursts", type=int, default=0, help="only count the split of N bursts")
    parser.add_argument("--clients", type=int, default=16, help="connections per burst")
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    if args.bursts:
        for root in [None, *([args.base] if args.base else [])]:
            splits = _bursts(args, data_dir, root)
            name = "base" if root else "shim"
            print(
                f"{name}-2w, {args.bursts} bursts of {args.clients}: "
                + ", ".join(f"{split} x{n}" for split, n in splits.most_common())
            )
        return 0
    table: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.runs):
        for scenario in args.scenarios.split(","):
            plan = [(int(w), None) for w in args.workers.split(",")]
            plan += [(2, args.base)] if args.base else []
            for workers, root in plan:
                run = _one(args, workers, scenario, data_dir, root)
                print(json.dumps(run), flush=True)
                table.setdefault((scenario, run["target"]), []).append(run)
    print("\n| scenario | target | rate (median) | CPU s srv/up/load | per worker, each run |")
    print("|---|---|---|---|---|")
    for runs in table.values():
        print(_row(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

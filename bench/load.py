"""One measured run of load against a server: ``wrk`` for JSON requests, ``bench.stream_client`` for streams.

Each run reports what the load generator saw plus the CPU seconds every process used during it
(server tree, upstream, load generator) and the server's peak RSS, so a noisy run can be spotted.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.procstat import RssSampler, cpu_seconds, rss_bytes
from bench.servers import ROOT, Proc

__all__ = ["run_streams", "run_wrk"]

_LUA = Path(__file__).with_name("wrk_post.lua")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measured(
    cmd: list[str], env: dict[str, str], server: Proc, upstream: Proc | None
) -> tuple[str, dict[str, float]]:
    """Run the load command to completion, measuring every process around it."""
    procs = (
        {"server": server}
        if upstream is None or upstream is server
        else {"server": server, "upstream": upstream}
    )
    before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
    load_before = _children_cpu()
    t0 = time.perf_counter()
    with RssSampler(server.pid) as rss:
        done = subprocess.run(cmd, env={**os.environ, **env}, cwd=ROOT, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[3]} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    stats = {f"{name}_cpu_s": round(cpu_seconds(p.pid) - before[name], 3) for name, p in procs.items()}
    stats["load_cpu_s"] = round(_children_cpu() - load_before, 3)
    stats["wall_s"] = round(wall, 3)
    stats["peak_rss_mib"] = round(rss.peak / 2**20, 1)
    return done.stdout.decode(), stats


def run_wrk(
    url: str, body: str, connections: int, duration: float, cpus: str, server: Proc, upstream: Proc | None
) -> dict[str, float]:
    cmd = [
        "taskset",
        "-c",
        cpus,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
    ]
    cmd += ["-s", str(_LUA), url]
    out, stats = _measured(cmd, {"BENCH_BODY": body}, server, upstream)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out[-2000:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6
    errors = sum(v for k, v in raw.items() if k.startswith("errors_"))
    return {
        "requests": raw["requests"],
        "req_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": raw["lat_p50_us"] / 1000,
        "p90_ms": raw["lat_p90_us"] / 1000,
        "p99_ms": raw["lat_p99_us"] / 1000,
        "errors": errors,
        **stats,
        "srv_cpu_ms_per_req": round(stats["server_cpu_s"] * 1000 / raw["requests"], 4)
        if raw["requests"]
        else None,
    }


def run_streams(
    url: str,
    body: str,
    api: str,
    clients: int,
    cpus: str,
    server: Proc,
    upstream: Proc | None,
    *,
    duration: float = 0.0,
    streams: int = 0,
) -> dict[str, float]:
    cmd = ["taskset", "-c", cpus, sys.executable, "-m", "bench.stream_client", "--url", url, "--body", body]
    cmd += ["--api", api, "--clients", str(clients), "--duration", str(duration), "--streams", str(streams)]
    idle = rss_bytes(server.pid)
    out, stats = _measured(cmd, {}, server, upstream)
    result: dict[str, float] = json.loads(out)
    return {**result, "idle_rss_mib": round(idle / 2**20, 1), **stats}

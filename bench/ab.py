"""Two checkouts of the shim measured back to back: server CPU time per request, interleaved.

    .venv/bin/python -m bench.ab --a /tmp/before --b . [--rounds 4] [--seconds 4] [--env B:NAME=VALUE]

Each round starts a fresh one-worker server from ``--a``, measures it, then the same from
``--b`` (the order alternates every round), under three loads: one client and 64 clients on
50-token JSON answers (``wrk``), 16 clients on 200-chunk streams. The figure is the server's CPU
time (user + system from ``/proc``) over the requests or streams it completed: on a shared
machine the wall clock measures the neighbours, CPU time much less so. Server on core 0,
upstream and load on core 1, as in ``bench/run.sh``. ``--env A:NAME=VALUE`` (or ``B:``) sets an
environment variable for one side only (a setting to compare on one checkout). With one
client, wrk's p50 latency is shown too (``c=1 p50``: wall clock, so the load moves it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.harness import FORWARD
from bench.load import run_streams, run_wrk
from bench.servers import Target, start_target, start_upstream

_LOADS = (("c=1", False, 1), ("c=64", False, 64), ("streams", True, 16))


def measure(target: Target, seconds: float, data_dir: Path, loads: set[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for stream in (False, True):
        if not any(streamed == stream and name in loads for name, streamed, _ in _LOADS):
            continue
        upstream = start_upstream("1", 200 if stream else 50, 0.0)
        try:
            path, body, api = FORWARD.call(target, stream)
            url = f"http://127.0.0.1:{upstream.port}/v1"
            server = start_target(target, url, "chat", "0", (path, body.encode()), data_dir)
            try:
                base = f"http://127.0.0.1:{server.port}{path}"
                for name, streamed, clients in _LOADS:
                    if streamed != stream or name not in loads:
                        continue
                    if stream:
                        run_streams(base, body, api, 4, "1", server, upstream, duration=1.0)
                        m = run_streams(base, body, api, clients, "1", server, upstream, duration=seconds)
                        out[name] = m["server_cpu_s"] * 1000 / max(m["streams_ok"], 1)
                        out["rss"] = m["idle_rss_mib"]
                    else:
                        run_wrk(base, body, 8, 1.0, "1", server, upstream)
                        m = run_wrk(base, body, clients, seconds, "1", server, upstream)
                        out[name] = m["server_cpu_s"] * 1000 / max(m["requests"], 1)
                        if clients == 1:  # the one-client latency (wall clock: read it with the load)
                            out["c=1 p50"] = m["p50_ms"]
                            out["c=1 p99"] = m["p99_ms"]
            finally:
                server.stop()
        finally:
            upstream.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a", type=Path, required=True, help="checkout A (e.g. before a change)")
    parser.add_argument("--b", type=Path, required=True, help="checkout B (e.g. after)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--env", action="append", default=[], help="A:NAME=VALUE or B:NAME=VALUE")
    parser.add_argument("--loads", default="c=1,c=64,streams", help="a subset of c=1,c=64,streams")
    args = parser.parse_args(argv)
    extra: dict[str, dict[str, str]] = {"A": {}, "B": {}}
    for item in args.env:
        side, _, pair = item.partition(":")
        name, _, value = pair.partition("=")
        extra[side.upper()][name] = value
    targets = {
        side: Target("shim-1w", "shim", root=root.resolve(), extra=extra[side])
        for side, root in (("A", args.a), ("B", args.b))
    }
    data_dir = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for i in range(args.rounds):
        for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
            m = measure(targets[side], args.seconds, data_dir, set(args.loads.split(",")))
            results[side].append(m)
            cells = "  ".join(f"{k} {v:.3f}" for k, v in m.items())
            print(f"round {i + 1} {side}: {cells}", flush=True)
    print()
    print("| load | A: CPU ms (median; range) | B: CPU ms (median; range) | B - A |")
    print("|---|---|---|---:|")
    units = {"rss": " MiB idle RSS", "streams": " per stream", "c=1 p50": " ms of latency (wrk)"}
    for key in (*(name for name, _, _ in _LOADS), "c=1 p50", "rss"):
        if key not in results["A"][0]:
            continue
        a = [m[key] for m in results["A"]]
        b = [m[key] for m in results["B"]]
        unit = units.get(key, " per request")
        print(
            f"| {key}{unit} | {statistics.median(a):.3f} ({min(a):.3f}-{max(a):.3f}) | "
            f"{statistics.median(b):.3f} ({min(b):.3f}-{max(b):.3f}) | "
            f"{statistics.median(b) - statistics.median(a):+.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where each microsecond of a request goes: py-spy on a one-worker shim under load, by layer.

    .venv/bin/python -m bench.breakdown                       # 64 clients, JSON, this checkout
    .venv/bin/python -m bench.breakdown --clients 1           # one client
    .venv/bin/python -m bench.breakdown --stream              # 200-chunk streams, 16 clients
    .venv/bin/python -m bench.breakdown --root /tmp/deb5485   # another checkout (a baseline)

The server runs on core 0, the fake upstream and the load generator on core 1 (as in
``bench/run.sh``). One run without the profiler gives the server's CPU time per request (from
``/proc``); a second run under py-spy gives the share of each layer (the innermost Python frame
of each sample, ``bench.pyspy_profile.layers``); their product is the microseconds per request
each layer costs. Shares are of on-CPU samples, so they do not depend on how busy the machine
is; the CPU time per request does a little (caches), so compare figures taken back to back.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from bench import pyspy_profile
from bench.harness import FORWARD
from bench.load import run_streams, run_wrk
from bench.servers import Target, start_target, start_upstream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, help="checkout of the shim to run (default: this one)")
    parser.add_argument("--clients", type=int, help="concurrent clients (default 64 JSON, 16 streams)")
    parser.add_argument("--stream", action="store_true", help="200-chunk streams instead of JSON answers")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    parser.add_argument("--rate", type=int, default=400, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25, help="functions listed by own time")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the shim (repeatable)")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env)
    target = Target("shim-1w", "shim", root=args.root.resolve() if args.root else None, extra=extra)
    tokens = 200 if args.stream else 50
    clients = args.clients or (16 if args.stream else 64)
    path, body, api = FORWARD.call(target, stream=args.stream)
    upstream = start_upstream("1", tokens, 0.0)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-breakdown-"))
    try:
        url = f"http://127.0.0.1:{upstream.port}/v1"
        server = start_target(target, url, "chat", "0", (path, body.encode()), data_dir)
        try:
            base = f"http://127.0.0.1:{server.port}{path}"

            def load(seconds: float) -> dict[str, float]:
                if args.stream:
                    return run_streams(base, body, api, clients, "1", server, upstream, duration=seconds)
                return run_wrk(base, body, clients, seconds, "1", server, upstream)

            load(2.0)  # warm-up
            plain = load(args.seconds)
            done = plain["streams_ok"] if args.stream else plain["requests"]
            cpu_ms = plain["server_cpu_s"] * 1000 / done
            unit = "stream" if args.stream else "request"
            print(f"{done:.0f} {unit}s in {args.seconds:.0f} s; server CPU {cpu_ms:.3f} ms per {unit}")
            folded = Path(tempfile.mkstemp(prefix="bench-pyspy-", suffix=".folded")[1])
            cmd = [pyspy_profile.py_spy(), "record", "--pid", str(server.pid), "--rate", str(args.rate)]
            cmd += ["--format", "raw", "--output", str(folded), "--nonblocking"]
            cmd += ["--duration", str(max(1, int(args.seconds)))]
            spy = subprocess.Popen(["taskset", "-c", "1", *cmd], stdout=subprocess.DEVNULL)
            load(args.seconds)
            spy.wait(timeout=args.seconds + 60)
            text = folded.read_text()
            folded.unlink()
            print()
            print(pyspy_profile.layers(text, cpu_ms).replace("per request", f"per {unit}"))
            print()
            print(pyspy_profile.summarise(text, args.top))
        finally:
            server.stop()
    finally:
        upstream.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

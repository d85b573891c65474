"""Memory per open stream (issue 18, scenario 4), measured while the streams are open.

    .venv/bin/python -m bench.open_streams [--streams 1000] [--target shim|passthrough] [--root CHECKOUT]
    .venv/bin/python -m bench.open_streams --streams 200 --trace /tmp/open-streams   # + where it goes
    .venv/bin/python -m bench.open_streams --rounds 3   # as scenario 4 of a full run: peak of three batches

One server (core 0) in front of the fake upstream pacing 50-token Chat streams at one event per
100 ms (core 1), four warm-up streams, then ``--streams`` slow streams at once (``bench.stream_client``,
core 1), as scenario 4 of ``bench/harness.py`` does. Reported: the server's RSS when idle, once
every stream is open (its file descriptors counted in ``/proc``: one to the client and one to the upstream
each), and at its peak (sampled every 50 ms), and ``(peak - idle) / streams``, the harness's
"KB per open stream".

``--trace DIR`` runs the server under tracemalloc (``bench/memtrace.py serve``) and takes a snapshot
when idle and one with every stream open (each after a full collection), then prints what Python
holds per open stream: traced bytes by layer (the package of the allocating line), the lines that
hold most, and live objects by type. RSS under tracing is not comparable (tracemalloc's own
bookkeeping): take RSS figures from a run without ``--trace``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from bench.harness import FORWARD
from bench.load import run_streams
from bench.procstat import RssSampler, rss_bytes
from bench.servers import PY, ROOT, Proc, Target, free_port, start, start_target, start_upstream

__all__ = ["main"]

# Where an allocating line lives, by path fragment; the first match wins.
_LAYERS = (
    ("/uvicorn/", "uvicorn"),
    ("/httptools/", "uvicorn"),
    ("/aiohttp/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/httpx/", "httpx"),
    ("/httpcore/", "httpx"),
    ("/litestar/", "litestar"),
    ("/anyio/", "anyio"),
    ("/asyncio/", "asyncio"),
    ("/shim/turns/", "shim turns"),
    ("/shim/translate/", "shim translate"),
    ("/shim/upstream/", "shim upstream"),
    ("/shim/http/", "shim http"),
    ("/shim/", "shim other"),
    ("/bench/", "bench"),
)


def _layer(filename: str) -> str:
    for fragment, name in _LAYERS:
        if fragment in filename:
            return name
    return "other: " + Path(filename).name


def _fds(pid: int) -> int:
    """Open file descriptors of the server: sockets, apart from a constant few."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def _traced_server(
    target: Target, root: Path, upstream_url: str, out: Path, data_dir: Path, frames: int | None
) -> Proc:
    """``shim serve`` (or the pass-through) under ``bench/memtrace.py serve``."""
    port = free_port()
    path, body, _ = FORWARD.call(target, stream=False)
    cmd = [PY, str(ROOT / "bench" / "memtrace.py"), "serve", str(out)]
    if target.kind == "passthrough":
        cmd += ["-m", "bench.passthrough", "--upstream", upstream_url, "--port", str(port)]
    else:
        cmd += ["serve", "--upstream", upstream_url, "--dialect", "openai", "--kind", "chat"]
        cmd += ["--port", str(port), "--store", "memory://"]
    env = {
        "SHIM_DATA_DIR": str(data_dir),
        "SHIM_SECRET": "bench-secret-0123456789abcdef0123456789abcdef",
        "SHIM_LOG_LEVEL": "warning",
        "PYTHONPATH": str(root),
        **({"MEMTRACE_FRAMES": str(frames)} if frames is not None else {}),
    }
    return start(
        f"{target.name}-traced", cmd, port, "0", env=env, probe=(path, body.encode()), cwd=root, timeout=180
    )


def _dump(pid: int, out: Path) -> None:
    """Ask the traced server for a snapshot and wait until it is written."""
    stats = out / "stats.jsonl"
    before = len(stats.read_text().splitlines()) if stats.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 600
    while not stats.exists() or len(stats.read_text().splitlines()) == before:
        if time.monotonic() > deadline:
            raise RuntimeError("the traced server wrote no snapshot (see its log)")
        time.sleep(0.1)


def _heap(out: Path, labels: list[str]) -> None:
    """The allocators' figures at each mark (``bench/memtrace.py``'s ``allocators``), MiB."""
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    keys = [k for k in stats[0] if k.startswith(("pymalloc_", "glibc_"))] + ["rss_mib"]
    print("MiB (after a full collection): " + ", ".join(keys))
    for label, line in zip(["idle", *labels], stats, strict=True):
        print(f"  {label:>12}: " + ", ".join(f"{line[k]:.1f}" for k in keys))


def _per_stream(out: Path, streams: int, top: int, label: str, k: int) -> None:
    """What snapshot ``k`` holds beyond snapshot 0 (idle), per stream."""
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    idle, busy = stats[0], stats[k]
    base = tracemalloc.Snapshot.load(str(out / "snapshot-0.pickle"))
    snap = tracemalloc.Snapshot.load(str(out / f"snapshot-{k}.pickle"))
    diffs = snap.compare_to(base, "lineno")
    total = sum(d.size_diff for d in diffs)
    print(
        f"\n{label}: traced {total / streams:,.0f} bytes per stream ({total / 2**20:.2f} MiB for {streams})"
    )
    print(
        f"traced peak since the snapshot before: "
        f"{(busy['traced_peak_mib'] - idle['traced_mib']) * 2**20 / streams:,.0f} bytes per stream"
    )
    layers: Counter[str] = Counter()
    for d in diffs:
        layers[_layer(d.traceback[0].filename)] += d.size_diff
    print("by layer (the allocating line's package), bytes per stream:")
    for name, size in layers.most_common():
        if abs(size) / streams >= 16:
            print(f"  {size / streams:8,.0f}  {name}")
    print(f"lines holding most, bytes and blocks per stream (top {top}):")
    for d in diffs[:top]:
        frame = d.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split(str(ROOT) + "/")[-1]
        print(f"  {d.size_diff / streams:7,.0f} B {d.count_diff / streams:6.2f}  {where}:{frame.lineno}")
    grown = Counter(busy["all_types"])
    grown.subtract(idle["all_types"])
    print("live objects per stream, by type (after a full collection):")
    print(
        "  "
        + ", ".join(
            f"{name} {count / streams:.2f}" for name, count in grown.most_common(40) if count / streams >= 0.5
        )
    )
    print(f"  in all: {(busy['objects'] - idle['objects']) / streams:.1f} objects, tasks {busy['tasks']}")
    frames = {k: v for k, v in busy["frames"].items()}
    for k, (count, size) in idle["frames"].items():
        frames[k] = [frames.get(k, [0, 0])[0] - count, frames.get(k, [0, 0])[1] - size]
    held = sorted(((size / streams, count / streams, k) for k, (count, size) in frames.items()), reverse=True)
    print("suspended coroutines and generators per stream (bytes with their frames, count):")
    print("  " + ", ".join(f"{k} {size:.0f} B ({count:.2f})" for size, count, k in held if count / 1 >= 0.5))
    closures = Counter(busy["closures"])
    closures.subtract(idle["closures"])
    print(
        "closures per stream: "
        + ", ".join(f"{k} {v / streams:.2f}" for k, v in closures.most_common(20) if v / streams >= 0.5)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--target", choices=["shim", "passthrough"], default="shim")
    parser.add_argument("--root", type=Path, default=ROOT, help="the shim checkout to run (another commit)")
    parser.add_argument("--tokens", type=int, default=50, help="events per stream, one per --delay")
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--later", type=float, help="measure again this many seconds after all opened")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="then run the same batch again in the same server, N in all, as the harness's three runs "
        "do (each later round starts where the allocator left the one before): peak of each round",
    )
    parser.add_argument("--trace", type=Path, help="run under tracemalloc, snapshots in this directory")
    parser.add_argument("--top", type=int, default=25, help="lines shown with --trace")
    parser.add_argument(
        "--heap",
        type=Path,
        help="no tracing, but the allocators' figures (pymalloc, glibc) at each mark (files in this directory)",
    )
    args = parser.parse_args(argv)
    n = args.streams
    data_dir = Path(tempfile.mkdtemp(prefix="bench-open-streams-"))
    target = Target(args.target, args.target, root=None if args.root == ROOT else args.root.resolve())
    path, body, api = FORWARD.call(target, stream=True)
    upstream = start_upstream("1", args.tokens, args.delay)
    url = f"http://127.0.0.1:{upstream.port}/v1"
    trace = args.trace or args.heap
    if trace is not None:
        trace.mkdir(parents=True, exist_ok=True)
        for old in trace.iterdir():
            old.unlink()
        frames = 0 if args.trace is None else None
        server = _traced_server(target, args.root.resolve(), url, trace, data_dir, frames)
    else:
        probe = FORWARD.call(target, stream=False)
        server = start_target(target, url, "chat", "0", (probe[0], probe[1].encode()), data_dir)
    mib = 2**20
    try:
        base = f"http://127.0.0.1:{server.port}"
        run_streams(base + path, body, api, 4, "1", server, upstream, streams=1)
        time.sleep(0.5)
        idle = rss_bytes(server.pid)
        if trace is not None:
            _dump(server.pid, trace)
        fds = _fds(server.pid)
        cmd = ["taskset", "-c", "1", PY, "-m", "bench.stream_client", "--url", base + path, "--body", body]
        cmd += ["--api", api, "--clients", str(n), "--streams", "1", "--timeout", "600"]
        marks: list[tuple[str, float]] = []
        with RssSampler(server.pid) as peak:
            client = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE)
            started = time.monotonic()
            # every stream open: a socket from its client and one to the upstream (the warm-up's
            # pooled upstream connections are reused)
            most = 0
            while (now := _fds(server.pid)) < fds + 2 * n - 4 and client.poll() is None:
                most = max(most, now)
                time.sleep(0.1)
            if client.poll() is not None:
                print(f"never all open: at most {most - fds} more descriptors than idle, for {n} streams")
            opened = time.monotonic() - started
            time.sleep(0.3)  # their first events in flight
            marks.append(("all open", rss_bytes(server.pid)))
            if trace is not None:
                _dump(server.pid, trace)
            if args.later is not None:
                time.sleep(max(0.0, started + opened + args.later - time.monotonic()))
                marks.append((f"{args.later:g} s later", rss_bytes(server.pid)))
                if trace is not None:
                    _dump(server.pid, trace)
            result = json.loads(client.communicate()[0])
        time.sleep(0.5)
        marks.append(("after", rss_bytes(server.pid)))
        if trace is not None:
            _dump(server.pid, trace)
        rounds = [(idle, peak.peak)]
        for _ in range(args.rounds - 1):
            before = rss_bytes(server.pid)
            with RssSampler(server.pid) as again:
                run_streams(base + path, body, api, n, "1", server, upstream, streams=1)
            rounds.append((before, again.peak))
        print(
            f"{args.target} ({args.root}): {result['streams_ok']}/{n} streams complete, "
            f"{result['errors']} errors, all open after {opened:.2f} s, end p50 {result['total_p50_ms']} ms; "
            f"server fds {fds} idle, {_fds(server.pid)} after"
        )
        print(
            f"RSS MiB: idle {idle / mib:.1f}, "
            + ", ".join(f"{name} {rss / mib:.1f}" for name, rss in marks)
            + f", peak {peak.peak / mib:.1f}"
        )
        print(
            "KB per open stream: "
            + ", ".join(f"{(rss - idle) / n / 1024:.1f} ({name})" for name, rss in marks[:-1])
            + f", {(peak.peak - idle) / n / 1024:.1f} (peak, the harness's figure)"
        )
        if args.rounds > 1:
            print(
                "rounds (RSS MiB before -> peak): "
                + ", ".join(f"{a / mib:.1f} -> {b / mib:.1f}" for a, b in rounds)
                + f"; peak of all {max(b for _, b in rounds) / mib:.1f} (the harness's peak RSS)"
            )
        if trace is not None:
            labels = (
                ["all open"] + ([f"{args.later:g} s later"] if args.later is not None else []) + ["after"]
            )
            _heap(trace, labels)
            if args.trace is not None:
                for k, label in enumerate(labels, start=1):
                    _per_stream(trace, n, args.top if label != "after" else 10, label, k)
    finally:
        server.stop()
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

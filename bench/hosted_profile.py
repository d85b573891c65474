"""The whole ``shim serve`` process under callgrind (or py-spy) over a fixed number of hosted
responses, with the real MCP server and fake upstream of ``bench.hosted_tool`` (issue 18).

    .venv/bin/python -m bench.hosted_profile [--responses 40] [--warmup 10] [--stream] [--plain]
        [--tool callgrind|none] [--out FILE] [--root CHECKOUT]

``--tool callgrind``: the shim runs under ``valgrind --tool=callgrind``; after the warm-up its
counters are zeroed (``callgrind_control -z``), the measured responses are sent, and the counters
dumped (``callgrind_control -d``): the instructions per response of everything the shim process
did meanwhile — the request, the MCP client, both upstream rounds, and whatever runs while the
shim waits (timers, idle connections' work), counted whatever the machine's load. The figure is
the dump's total over ``--responses``; ``callgrind_annotate`` reads the file for where it went.
(Under valgrind the process runs ~50x slower, so costs that scale with wall time rather than
with responses would be inflated here: the ``none`` mode, with ``strace -c -p``, is the check.)

``--tool none``: the shim natively; the script prints its pid and waits for Enter before the
measured responses, so a profiler or strace can be attached.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.hosted_tool import LABEL, MCP_SCRIPT, TOOL, WORD, Driver, body
from bench.servers import PY, ROOT, free_port, start

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def _totals(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def _proc(pid: int) -> dict[str, float]:
    """The process's CPU seconds (user, system) and context switches so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    out = {"user": int(fields[11]) / ticks, "system": int(fields[12]) / ticks}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "voluntary_ctxt_switches":
            out["voluntary"] = float(value)
        elif name == "nonvoluntary_ctxt_switches":
            out["involuntary"] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--responses", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--plain", action="store_true", help="no hosted tool: a plain one-round response")
    parser.add_argument("--tool", choices=("callgrind", "strace", "py-spy", "none"), default="callgrind")
    parser.add_argument("--attach", action="store_true", help="--tool none: wait for Enter before and after")
    parser.add_argument("--out", type=Path, help="the callgrind dump (default: a temporary file)")
    parser.add_argument("--root", type=Path, help="checkout of the shim to run (default: this one)")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--load-cpus", default="1")
    parser.add_argument(
        "--slow-peers",
        action="store_true",
        help="the MCP server and the upstream under callgrind too (not counted): every process slowed alike, "
        "so the shim sees its peers' answers arrive as it does natively (in pieces, while it waits)",
    )
    args = parser.parse_args(argv)

    os.sched_setaffinity(0, {int(args.load_cpus.split(",")[0])})
    mcp_port = free_port()
    slow = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", "--instr-atstart=yes"]
    peer = slow if args.slow_peers else []
    mcp_cmd = [*peer, PY, str(MCP_SCRIPT), str(mcp_port), "streamable-http"]
    mcp = start("mcp", mcp_cmd, mcp_port, args.load_cpus, timeout=600.0)
    call = ("--tool-call", f"{LABEL}__{TOOL}", "--tool-arguments", json.dumps({"word": WORD}))
    up_port = free_port()
    up_cmd = [
        *peer,
        PY,
        "-m",
        "bench.fake_upstream",
        "--port",
        str(up_port),
        "--tokens",
        "50",
        "--delay",
        "0.0",
        *call,
    ]
    upstream = start("upstream", up_cmd, up_port, args.load_cpus, timeout=600.0)
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    out = args.out or Path(tempfile.mkstemp(prefix="hosted-", suffix=".callgrind")[1])
    port = free_port()
    cmd = [PY, "-m", "shim", "serve", "--upstream", f"http://127.0.0.1:{upstream.port}/v1"]
    cmd += ["--dialect", "openai", "--kind", "chat", "--port", str(port), "--store", "memory://"]
    if args.tool == "callgrind":
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd]
    root = args.root.resolve() if args.root else None
    env = {
        "SHIM_DATA_DIR": tempfile.mkdtemp(prefix="bench-hosted-"),
        "SHIM_SECRET": SECRET,
        "SHIM_LOG_LEVEL": "warning",
        "SHIM_MCP_ALLOW": mcp_url,
    }
    if root is not None:
        env["PYTHONPATH"] = str(root)
    shim = start("shim", cmd, port, args.server_cpus, env=env, timeout=600.0, cwd=root or ROOT)
    try:
        hosted = not args.plain
        payload = body(mcp_url if hosted else None, args.stream)
        driver = Driver(port)
        for _ in range(args.warmup):
            driver.one(payload, hosted, args.stream)
        # the process valgrind runs is taskset's child: valgrind replaced taskset's exec
        pid = shim.pid
        tracer = None
        if args.tool == "callgrind":
            subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
        elif args.tool == "strace":
            tracer = subprocess.Popen(
                ["strace", "-c", "-f", "-o", str(out), "-p", str(pid)], stderr=subprocess.DEVNULL
            )
            time.sleep(1.0)
        elif args.tool == "py-spy":
            tracer = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--native",
                    "--rate",
                    "1000",
                    "--format",
                    "raw",
                    "-o",
                    str(out),
                    "-p",
                    str(pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(2.0)
        elif args.attach:
            input(f"shim pid {pid}: attach, then press Enter ")
        before = _proc(pid)
        t0 = time.perf_counter()
        for _ in range(args.responses):
            driver.one(payload, hosted, args.stream)
        wall = time.perf_counter() - t0
        used = {k: (v - before[k]) / args.responses for k, v in _proc(pid).items()}
        driver.close()
        kind = f"{'plain' if args.plain else 'hosted'} {'stream' if args.stream else 'JSON'}"
        if args.tool == "callgrind":
            subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
            dumps = sorted(out.parent.glob(out.name + "*"), key=lambda p: p.stat().st_mtime)
            dump = dumps[-1]
            total = _totals(dump)
            print(
                f"{kind}: {total / args.responses:,.0f} instructions per response "
                f"({args.responses} responses, {wall * 1000 / args.responses:.0f} ms wall each under valgrind; "
                f"dump {dump})"
            )
        else:
            print(
                f"{kind}: {args.responses} responses, {wall * 1000 / args.responses:.2f} ms wall each; per response: "
                f"user {used['user'] * 1000:.3f} ms, system {used['system'] * 1000:.3f} ms, "
                f"{used['voluntary']:.1f} voluntary + {used['involuntary']:.1f} involuntary context switches"
            )
            if tracer is not None:
                tracer.send_signal(2)
                tracer.wait()
                if args.tool == "strace":
                    print(out.read_text())
            elif args.attach:
                input("measured: detach, then press Enter ")
    finally:
        shim.stop()
        upstream.stop()
        mcp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

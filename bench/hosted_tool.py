"""Issue 18's hosted-tool target: the shim's CPU for a response with one MCP call.

    .venv/bin/python -m bench.hosted_tool [--seconds 2] [--repeats 3] [--root CHECKOUT]

Three processes, as in production: the shim (``shim serve``, one worker, pinned to core 0), a
fake Chat upstream (``bench.fake_upstream --tool-call demo__magic_word``: round one of a request
offering tools answers with one call, round two, holding the tool's result, with a 50-token
text) and a real MCP server (``tests/support/mcp_server.py``, the ``mcp`` SDK over streamable
HTTP, the transport the shim tries first), both on core 1 with this driver. The driver sends
``POST /v1/responses`` one after another on one keep-alive connection, each with the hosted tool
as a client sends it (``server_url``, ``require_approval: never``, ``allowed_tools``), JSON and
streamed, and checks every answer holds a completed ``mcp_call`` and the model's answer.

The figure is the shim process's CPU time (user + system, ``/proc``) over the responses it
finished, read before and after each measured run: the upstream's and the tool's own work happen
in their own processes, so they are excluded by construction (their CPU per response is printed
beside, for scale). The same shim is measured on a plain one-round response (no tools, the same
50-token answer) right before, so the difference is what the hosted round adds: listing the
server's tools, the call, the second upstream round, the merged events. Medians of ``--repeats``
runs of ``--seconds`` each, after a warm-up.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procstat import cpu_seconds
from bench.report import hosted_table
from bench.servers import ROOT, Proc, Target, free_port, start, start_target, start_upstream

__all__ = ["LOADS", "measure", "run"]

MCP_SCRIPT = ROOT / "tests" / "support" / "mcp_server.py"
TOOL = "magic_word"
LABEL = "demo"
WORD = "Paris"
OUTPUT = "magic-paris-42"  # what the real tool answers for WORD: seen in every answer
LOADS = ("plain_json", "plain_stream", "hosted_json", "hosted_stream")


def body(mcp_url: str | None, stream: bool) -> bytes:
    """A client's request; with ``mcp_url`` it offers the hosted MCP tool."""
    out: dict[str, Any] = {
        "model": "fake",
        "input": f"What is the magic word for {WORD}?",
        "max_output_tokens": 64,
        "store": False,
    }
    if mcp_url is not None:
        out["tools"] = [
            {
                "type": "mcp",
                "server_label": LABEL,
                "server_url": mcp_url,
                "require_approval": "never",
                "allowed_tools": [TOOL],
            }
        ]
    if stream:
        out["stream"] = True
    return json.dumps(out).encode()


def check(data: bytes, hosted: bool, stream: bool) -> str | None:
    """Why an answer is wrong, or ``None``."""
    if stream:
        if b"event: response.completed" not in data:
            return "no response.completed"
        if hosted and (b"event: response.mcp_call.completed" not in data or OUTPUT.encode() not in data):
            return "no completed mcp_call with the tool's output"
        return None
    out = json.loads(data)
    kinds = [item["type"] for item in out.get("output", [])]
    if out.get("status") != "completed":
        return f"status {out.get('status')}: {out.get('error')}"
    if hosted:
        if kinds != ["mcp_list_tools", "mcp_call", "message"]:
            return f"output {kinds}"
        if out["output"][1]["output"] != OUTPUT:
            return f"mcp_call output {out['output'][1].get('output')!r}"
    elif kinds != ["message"]:
        return f"output {kinds}"
    return None


class Driver:
    """Sequential responses on one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def one(self, payload: bytes, hosted: bool, stream: bool) -> None:
        headers = {"content-type": "application/json", "authorization": "Bearer bench"}
        self.conn.request("POST", "/v1/responses", payload, headers)
        res = self.conn.getresponse()
        data = res.read()
        if res.status != 200:
            raise RuntimeError(f"HTTP {res.status}: {data[:500]!r}")
        wrong = check(data, hosted, stream)
        if wrong is not None:
            raise RuntimeError(f"a wrong answer ({wrong}): {data[:2000]!r}")

    def close(self) -> None:
        self.conn.close()


@dataclass
class Servers:
    shim: Proc
    upstream: Proc
    mcp: Proc
    mcp_url: str


def measure(servers: Servers, load: str, seconds: float) -> dict[str, float]:
    """One run: responses for ``seconds``, with the CPU each process used over them."""
    hosted, stream = load.startswith("hosted"), load.endswith("stream")
    payload = body(servers.mcp_url if hosted else None, stream)
    driver = Driver(servers.shim.port)
    try:
        driver.one(payload, hosted, stream)  # the connection is open before the clock starts
        procs = {"shim": servers.shim, "upstream": servers.upstream, "mcp": servers.mcp}
        before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < seconds:
            driver.one(payload, hosted, stream)
            n += 1
        wall = time.perf_counter() - t0
        used = {name: cpu_seconds(p.pid) - before[name] for name, p in procs.items()}
    finally:
        driver.close()
    out = {f"{name}_cpu_ms": round(used[name] * 1000 / n, 3) for name in procs}
    return {"responses": n, "wall_ms": round(wall * 1000 / n, 3), **out}


@contextmanager
def serving(root: Path | None, data_dir: Path, server_cpus: str, load_cpus: str) -> Iterator[Servers]:
    """The MCP server and the fake upstream on ``load_cpus``, the shim on ``server_cpus``."""
    mcp_port = free_port()
    mcp = start(
        "mcp", [sys.executable, str(MCP_SCRIPT), str(mcp_port), "streamable-http"], mcp_port, load_cpus
    )
    try:
        call = ("--tool-call", f"{LABEL}__{TOOL}", "--tool-arguments", json.dumps({"word": WORD}))
        upstream = start_upstream(load_cpus, 50, 0.0, call)
        try:
            mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
            target = Target("shim-1w", "shim", root=root, extra={"SHIM_MCP_ALLOW": mcp_url})
            shim = start_target(
                target,
                f"http://127.0.0.1:{upstream.port}/v1",
                "chat",
                server_cpus,
                ("/v1/responses", body(None, False)),
                data_dir,
            )
            try:
                yield Servers(shim, upstream, mcp, mcp_url)
            finally:
                shim.stop()
        finally:
            upstream.stop()
    finally:
        mcp.stop()


@contextmanager
def _pinned(cpus: str) -> Iterator[None]:
    """This process (the driver) on ``cpus`` for the measurement, as the other load generators."""
    was = os.sched_getaffinity(0)
    wanted = {int(c) for part in cpus.split(",") for c in _span(part)}
    os.sched_setaffinity(0, wanted)
    try:
        yield
    finally:
        os.sched_setaffinity(0, was)


def _span(part: str) -> range:
    lo, _, hi = part.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def run(
    *,
    seconds: float = 2.0,
    repeats: int = 3,
    warmup: float = 1.0,
    root: Path | None = None,
    server_cpus: str = "0",
    load_cpus: str = "1",
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every load measured ``repeats`` times, rounds interleaved; medians and the hosted round's cost."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-hosted-"))
    runs: dict[str, list[dict[str, float]]] = {load: [] for load in LOADS}
    with _pinned(load_cpus), serving(root, data_dir, server_cpus, load_cpus) as servers:
        for load in LOADS:
            measure(servers, load, warmup)
        for i in range(repeats):
            for load in LOADS:
                m = measure(servers, load, seconds)
                runs[load].append(m)
                say(
                    f"  hosted tool run {i + 1} {load}: shim {m['shim_cpu_ms']:.3f} ms CPU per response "
                    f"({m['responses']:.0f} responses; upstream {m['upstream_cpu_ms']:.3f}, "
                    f"MCP server {m['mcp_cpu_ms']:.3f})"
                )
    median = {
        load: {key: round(statistics.median(r[key] for r in rs), 3) for key in rs[0]}
        for load, rs in runs.items()
    }
    for way in ("json", "stream"):
        median[f"added_{way}"] = {
            "shim_cpu_ms": round(
                median[f"hosted_{way}"]["shim_cpu_ms"] - median[f"plain_{way}"]["shim_cpu_ms"], 3
            )
        }
    return {"median": median, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measured run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per load (median)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per load")
    parser.add_argument("--root", type=Path, help="checkout of the shim to run (default: this one)")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--load-cpus", default="1")
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args(argv)
    print(f"hosted tool: load average {os.getloadavg()}", flush=True)
    result = run(
        seconds=args.seconds,
        repeats=args.repeats,
        warmup=args.warmup,
        root=args.root.resolve() if args.root else None,
        server_cpus=args.server_cpus,
        load_cpus=args.load_cpus,
    )
    print()
    print("\n".join(hosted_table(result["median"])))
    print()
    print(
        "The upstream and the MCP server are processes of their own: their CPU is not in the shim's "
        f"figure. Load average after: {os.getloadavg()}."
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""py-spy of a server while a load runs: the hottest functions, by own time and including callees."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import Proc

__all__ = ["layer_of", "layers", "profile_under", "py_spy", "summarise"]


def py_spy() -> str:
    exe = Path(sys.executable).with_name("py-spy")
    if exe.exists():
        return str(exe)
    found = shutil.which("py-spy")
    if found:
        return found
    raise RuntimeError("py-spy is missing: bash bench/run.sh installs it (the `bench` extra)")


def _frame(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; keep function and short path.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


# Shares worth watching: a sample counts when any frame of its stack matches.
_BUCKETS = {
    "upstream client (httpx + httpcore)": ("httpx/_client.py",),
    "  of which httpcore pool bookkeeping": ("_assign_requests_to_connections",),
    "logging (any logger call)": ("Logger._log",),
    "translation (shim/translate, shim/wire)": ("shim/translate/", "shim/wire/"),
    "metrics (prometheus_client)": ("prometheus_client/",),
}


# Where a request's CPU goes: each sample is charged to the layer of its innermost Python frame
# (time inside a C extension counts for the Python code that called it: msgspec decoding for
# translation, httptools parsing for uvicorn). First match wins, so the order matters.
_LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ASGI server (uvicorn, httptools)", ("uvicorn/", "httptools/", "granian/")),
    ("framework (Litestar routing, request, response)", ("litestar/",)),
    ("transport: aiohttp (+ yarl, multidict)", ("aiohttp/", "yarl/", "multidict/", "aiohappyeyeballs/")),
    ("transport: httpx models + shim/upstream/transport.py", ("httpx/", "shim/upstream/transport.py")),
    ("upstream client (shim/upstream: retries, limits, headers)", ("shim/upstream/",)),
    (
        "translation (shim/translate, wire, core, dialects, sse)",
        (
            "shim/translate/",
            "shim/wire/",
            "shim/core/",
            "shim/dialects/",
            "shim/sse.py",
        ),
    ),
    ("store (shim/store)", ("shim/store/",)),
    (
        "access log + metrics (observability, telemetry, prometheus)",
        (
            "shim/http/observability.py",
            "shim/telemetry.py",
            "prometheus_client/",
            "logging/",
        ),
    ),
    ("turns + conversation (shim/turns, shim/conversation)", ("shim/turns/", "shim/conversation/")),
    ("handlers, guards, auth (shim/http)", ("shim/http/", "shim/limits.py", "shim/ids.py")),
    ("asyncio (tasks, timeouts, streams)", ("asyncio/",)),
]
_LOOP = "event loop + sockets (uvloop, C; no Python frame)"


def layer_of(frame: str) -> str:
    """The layer of one py-spy frame (``function (path:line)``)."""
    if "asyncio/runners.py" in frame and frame.split(" (")[0] in ("run", "Runner.run"):
        return _LOOP
    for name, needles in _LAYERS:
        if any(needle in frame for needle in needles):
            return name
    return "other"


def layers(folded: str, cpu_ms_per_request: float | None = None) -> str:
    """A table of on-CPU samples by layer; with the CPU time per request, microseconds each."""
    counts: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        counts[layer_of(_frame(frames[-1]))] += int(count)
        total += int(count)
    if not total:
        return "py-spy recorded no samples."
    head = "| layer | share % |" + (" µs per request |" if cpu_ms_per_request else "")
    out = [head, "|---|---:|" + ("---:|" if cpu_ms_per_request else "")]
    for name, n in counts.most_common():
        share = n / total
        cell = f" {share * cpu_ms_per_request * 1000:.0f} |" if cpu_ms_per_request else ""
        out.append(f"| {name} | {100 * share:.1f} |{cell}")
    return "\n".join(out)


def summarise(folded: str, top: int = 20) -> str:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        for bucket, needles in _BUCKETS.items():
            if any(needle in stack for needle in needles):
                buckets[bucket] += n
        frames = [_frame(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "py-spy recorded no samples."
    out = [f"{total} on-CPU samples; shares overlap (httpx's own log line counts twice).", ""]
    out += ["| share % | where |", "|---|---|"]
    out += [f"| {100 * buckets[b] / total:.1f} | {b} |" for b in _BUCKETS]
    out += ["", "| own % | function |", "|---|---|"]
    out += [
        f"| {100 * n / total:.1f} | `{f}` |" for f in [k for k, _ in own.most_common(top)] for n in [own[f]]
    ]
    out += ["", "| incl. % | function |", "|---|---|"]
    out += [f"| {100 * n / total:.1f} | `{f}` |" for f, n in incl.most_common(top * 2) if "(<" not in f][
        : top + 10
    ]
    return "\n".join(out)


def profile_under(server: Proc, load: Callable[[], dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Record ``server`` with py-spy while ``load`` runs once; the load's figures are kept too."""
    out = Path(tempfile.mkstemp(prefix="bench-pyspy-", suffix=".folded")[1])
    cmd = [
        py_spy(),
        "record",
        "--pid",
        str(server.pid),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    cmd += ["--duration", str(max(1, int(seconds))), "--subprocesses", "--nonblocking"]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    figures = load()
    _, err = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0:
        return {"summary": f"py-spy failed: {err.decode()[-500:]}", "figures": figures}
    folded = out.read_text()
    return {"summary": summarise(folded), "figures": figures, "folded": str(out)}

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

__all__ = ["profile_under", "summarise"]


def _py_spy() -> str:
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
        _py_spy(),
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

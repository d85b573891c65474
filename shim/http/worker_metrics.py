"""``/metrics`` under ``shim serve --workers N``: every worker's counts in every scrape.

Each worker is its own process with its own registry, and a scrape reaches whichever worker the
kernel hands the connection, so per-worker registries made successive scrapes alternate (issue
17). prometheus_client's multiprocess mode fixes that: with ``PROMETHEUS_MULTIPROC_DIR`` set
before a process creates its first metric, every value is kept in a small memory-mapped file per
process in that directory, and a scrape merges all of them (counters and histograms summed,
``shim_open_streams`` summed over live workers).

The parent (``shim serve``) makes a fresh empty directory and sets the variable before it starts
the workers, which inherit it (``prepare``); it removes the directory when it exits. One worker
(the default) never sets it and scrapes its own registry, as several apps in one test process
must.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["ENV", "exposition", "prepare"]

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> Path:
    """In the parent, before the workers start: a fresh directory in the environment they inherit."""
    directory = Path(tempfile.mkdtemp(prefix="shim-metrics-"))
    os.environ[ENV] = str(directory)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_workers(directory: str) -> None:
    """A worker that died (and was replaced) leaves its live gauges behind: drop them, so that
    ``shim_open_streams`` counts only streams that are open. Its counters stay in the totals."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text for ``/metrics``: all workers merged when they share a directory,
    else this process's registry."""
    directory = os.environ.get(ENV)
    if not directory:
        return generate_latest(registry)
    _forget_dead_workers(directory)
    merged = CollectorRegistry()
    MultiProcessCollector(merged, directory)  # type: ignore[no-untyped-call]  # untyped upstream
    return generate_latest(merged)

"""Where the shim's memory goes during a soak: ``shim serve`` under tracemalloc, snapshots on demand.

    .venv/bin/python bench/soak.py --memtrace /tmp/memtrace ...   # the shim runs through this module
    .venv/bin/python bench/memtrace.py report /tmp/memtrace

``serve DIR ARGS…`` starts tracemalloc, then ``shim ARGS…`` (``serve DIR -m MODULE ARGS…``: that
module's ``main(ARGS)``, e.g. ``bench.passthrough``); each SIGUSR1 (the soak sends one
after its warm-up and after every phase) runs a full garbage collection and writes
``DIR/snapshot-K.pickle`` plus a line of ``DIR/stats.jsonl``: memory Python has allocated and not
freed (``traced``), resident memory, what the collection freed, and live objects by type (the
objects built while serving: start-up objects are frozen out of the collector's lists).

``MEMTRACE_FRAMES`` (default 8) frames are kept per allocation; 0 runs without tracemalloc, for
the allocators' figures alone (pymalloc arenas and blocks, glibc's heap) at RSS as in production.

``report DIR`` compares every snapshot with the first: the change in traced memory, and the
source lines whose live allocations grew most. Growth that keeps coming back on the same lines
phase after phase is something kept per request; RSS growth with flat traced memory is the
allocator (fragmentation, arenas not returned), not objects the shim holds on to.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import importlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
import tracemalloc
import types as types_module
from collections import Counter
from pathlib import Path
from types import FrameType

_SUSPENDED = (types_module.CoroutineType, types_module.AsyncGeneratorType, types_module.GeneratorType)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _where(task: asyncio.Task[object]) -> str:
    """Where a task waits: its coroutine's name and the innermost frames of its await chain."""
    frames = task.get_stack()
    places = [f"{f.f_code.co_name}@{Path(f.f_code.co_filename).name}:{f.f_lineno}" for f in frames[-3:]]
    coro = task.get_coro()  # a coroutine, or an async generator's ``asend`` awaitable
    name = getattr(coro, "__qualname__", type(coro).__name__)
    return f"{name}: " + " < ".join(reversed(places))


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def allocators() -> dict[str, float]:
    """Where the process's heap memory sits, MiB: Python's small-object allocator (pymalloc's
    arenas, and how much of them live objects use) and glibc's heap (objects over 512 bytes,
    C libraries' own buffers). RSS growing with these flat is memory outside both (stacks,
    mapped files); arenas growing with their blocks flat is fragmentation."""
    out: dict[str, float] = {}
    with tempfile.TemporaryFile("w+") as tmp:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        for line in tmp:
            for key, name in (
                ("# arenas allocated current", "pymalloc_arenas_mib"),
                ("# bytes in allocated blocks", "pymalloc_blocks_mib"),
                ("# bytes in available blocks", "pymalloc_free_blocks_mib"),
            ):
                if line.startswith(key):
                    value = int(line.split("=")[1].replace(",", ""))
                    out[name] = round(value * (2**20 if "arenas" in key else 1) / 2**20, 2)
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        out["glibc_in_use_mib"] = round((info.uordblks + info.hblkhd) / 2**20, 2)
        out["glibc_free_mib"] = round(info.fordblks / 2**20, 2)
    except (OSError, AttributeError):  # not glibc
        pass
    return out


def serve(out: Path, shim_args: list[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    frames = int(os.environ.get("MEMTRACE_FRAMES", "8"))
    if frames:  # 0: no tracing, the allocators' figures only (RSS as without this module)
        tracemalloc.start(frames)
    count = 0

    def dump(signum: int, frame: FrameType | None) -> None:
        # A signal handler runs inside whatever frame was executing: an exception escaping it
        # would fail that request, not the measurement.
        try:
            _dump()
        except Exception:
            traceback.print_exc()

    def _dump() -> None:
        nonlocal count
        started = time.monotonic()
        _, peak = tracemalloc.get_traced_memory()  # before the snapshot's own allocations
        rss_before = _rss_mib()
        freed = gc.collect()
        heap = allocators()
        if frames:
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
            )
            snapshot.dump(str(out / f"snapshot-{count}.pickle"))
            del snapshot  # its traces are tuples: not to be counted below
        traced = tracemalloc.get_traced_memory()[0]
        objects = gc.get_objects()
        types = Counter(type(o).__name__ for o in objects)
        # Async generators still alive after a full collection, by function: a growing count
        # is something left open (or waiting for the loop to close it).
        agens = Counter(
            o.ag_code.co_qualname for o in objects if isinstance(o, types_module.AsyncGeneratorType)
        )
        # Suspended coroutines and generators hold their frames (locals included); closures hold
        # their cells: which ones are alive, by name, and the bytes of the frames
        suspended: Counter[str] = Counter()
        frame_bytes: Counter[str] = Counter()
        closures: Counter[str] = Counter()
        for o in objects:
            if isinstance(o, _SUSPENDED):
                key = f"{type(o).__name__} {getattr(o, '__qualname__', '?')}"
                suspended[key] += 1
                frame_bytes[key] += sys.getsizeof(o)
            elif isinstance(o, types_module.FunctionType) and o.__closure__:
                closures[o.__qualname__] += 1
        del objects
        tasks = Counter(_where(t) for t in asyncio.all_tasks(asyncio.get_running_loop()))
        line = {
            "k": count,
            "traced_mib": round(traced / 2**20, 2),
            "traced_peak_mib": round(peak / 2**20, 2),
            "rss_mib_before_collect": round(rss_before, 1),
            "rss_mib": round(_rss_mib(), 1),
            **heap,
            "gc_freed": freed,
            "gc_garbage": len(gc.garbage),
            "objects": sum(types.values()),
            "async_generators": agens.most_common(10),
            "tasks": sum(tasks.values()),
            "tasks_by_place": tasks.most_common(10),
            "top_types": types.most_common(25),
            "all_types": dict(types),
            "frames": {k: [v, frame_bytes[k]] for k, v in suspended.items()},
            "closures": dict(closures),
            "dump_seconds": round(time.monotonic() - started, 1),
        }
        with (out / "stats.jsonl").open("a") as f:
            f.write(json.dumps(line) + "\n")
        count += 1
        tracemalloc.reset_peak()  # the next line's peak is the one since this snapshot

    signal.signal(signal.SIGUSR1, dump)
    if shim_args[:1] == ["-m"]:  # another server, e.g. ``-m bench.passthrough ARGS…``
        module = importlib.import_module(shim_args[1])
        module.main(shim_args[2:])
        return 0
    from shim.cli.command import main

    return main(shim_args)


def report(out: Path) -> None:
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    print("k  traced MiB  gc freed  objects  tasks  async generators alive after the collection")
    for s in stats:
        print(
            f"{s['k']}  {s['traced_mib']:10.2f}  {s['gc_freed']:8d}  {s['objects']:7d}  {s['tasks']:5d}"
            f"  {s['async_generators']}"
        )
    first_types = dict(stats[0]["top_types"])
    last_types = dict(stats[-1]["top_types"])
    grown = {t: last_types.get(t, 0) - first_types.get(t, 0) for t in set(first_types) | set(last_types)}
    print("objects by type, last - first:", sorted(grown.items(), key=lambda kv: -abs(kv[1]))[:12])
    base = tracemalloc.Snapshot.load(str(out / "snapshot-0.pickle"))
    for k in range(1, len(stats)):
        snap = tracemalloc.Snapshot.load(str(out / f"snapshot-{k}.pickle"))
        diffs = snap.compare_to(base, "lineno")
        total = sum(d.size_diff for d in diffs)
        print(f"\nsnapshot {k} vs 0: {total / 1024:+.1f} KiB traced; lines that grew most:")
        for d in diffs[:12]:
            frame = d.traceback[0]
            print(
                f"  {d.size_diff / 1024:+9.1f} KiB {d.count_diff:+7d} blocks  {frame.filename}:{frame.lineno}"
            )


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        return serve(Path(sys.argv[2]), sys.argv[3:])
    if len(sys.argv) == 3 and sys.argv[1] == "report":
        report(Path(sys.argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

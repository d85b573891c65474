"""diskcache specifics: the size bound evicts least-recently-used entries, and several worker
processes share one directory without losing or tearing a record or a claim."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
from pathlib import Path

from shim.store.diskcache_backend import DiskCacheBackend

WORKERS = 4
RECORDS = 60  # per worker
CLAIMS = 40  # contended by every worker
ROW_LIMIT = 32 * 1024  # small, so that some records take diskcache's separate-file path


async def test_the_size_bound_evicts_the_least_recently_used(tmp_path: Path) -> None:
    kv = DiskCacheBackend(str(tmp_path / "lru"), max_bytes=2 * 1024**2)
    blob = b"x" * (100 * 1024)
    try:
        await kv.set("kept", blob, None)
        for n in range(60):  # 6 MB through a 2 MB store
            await kv.set(f"filler-{n}", blob, None)
            assert await kv.get("kept") == blob  # reading it keeps it recent
        alive = [n for n in range(60) if await kv.get(f"filler-{n}") is not None]
        assert await kv.get("kept") == blob
        assert 0 < len(alive) < 30 and alive[-1] == 59  # the oldest went, the newest stayed
        volume = await asyncio.to_thread(kv._cache.volume)
        assert volume < 4 * 1024**2
    finally:
        await kv.aclose()


def _payload(worker: int, n: int) -> bytes:
    # Sizes on both sides of the row limit: values in rows and in separate files both race.
    size = 200 if n % 3 else 48 * 1024
    seed = hashlib.sha256(f"{worker}:{n}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


async def _work(path: str, worker: int) -> list[int]:
    kv = DiskCacheBackend(path, row_limit=ROW_LIMIT)
    won = []
    try:
        for n in range(max(RECORDS, CLAIMS)):
            if n < RECORDS:
                await kv.set(f"rec:{worker}:{n}", _payload(worker, n), 3600)
                await kv.append("log", f"{worker}:{n}".encode(), 3600)
            if n < CLAIMS and await kv.add(f"claim:{n}", str(worker).encode(), 3600):
                won.append(n)
    finally:
        await kv.aclose()
    return won


def _worker(path: str, worker: int, results: multiprocessing.Queue[tuple[int, list[int]]]) -> None:
    results.put((worker, asyncio.run(_work(path, worker))))


async def test_worker_processes_share_one_directory(tmp_path: Path) -> None:
    path = str(tmp_path / "shared")
    await DiskCacheBackend(path).aclose()  # create the database once, as the first worker would
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[int, list[int]]] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, w, results)) for w in range(WORKERS)]
    for proc in procs:
        proc.start()
    won = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    kv = DiskCacheBackend(path)
    try:
        for worker in range(WORKERS):
            for n in range(RECORDS):
                assert await kv.get(f"rec:{worker}:{n}") == _payload(worker, n), (worker, n)
        # every claim has exactly one winner, and the stored value names it
        claims = sorted(n for ns in won.values() for n in ns)
        assert claims == list(range(CLAIMS))
        for worker, ns in won.items():
            for n in ns:
                assert await kv.get(f"claim:{n}") == str(worker).encode()
        log = await kv.list_range("log")
        assert sorted(log) == sorted(f"{w}:{n}".encode() for w in range(WORKERS) for n in range(RECORDS))
    finally:
        await kv.aclose()

"""What ``shim serve --record DIR`` costs: CPU time per request with recording off and on.

    .venv/bin/python bench/record_cost.py [--requests 300] [--rounds 5] [--into DIR]

In-process: the app ``shim serve`` builds, its upstream the scripted Chat upstream over
``httpx.ASGITransport``, an Open Responses client streaming each answer. Each round serves the
same requests once without and once with recording (order alternating), and waits until every
recorded case is on disk, so the writer thread's work is counted. CPU time
(``time.process_time``: every thread of the process) is the figure, since wall time on a shared
machine swings by 2x. Reports the median per-request CPU time of each mode and the difference.
The cases go to a temporary folder under ``--into`` (default: the system's temporary folder);
the kernel's time writing them counts too, so the disk under it shows in the figure (compare a
tmpfs such as /dev/shm).
Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``shim`` and ``tests.support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.recording.support import RecordingShim
from tests.support.scripted_chat import app as scripted_chat

BODY = {"model": "m", "input": "Tell me about the weather in Paris.", "stream": True}


async def one_round(record: Path | None, requests: int) -> float:
    """CPU seconds per request for ``requests`` streamed answers (recording into ``record``)."""
    shim = RecordingShim(scripted_chat, record, route={"dialect": "openai"})
    try:
        await shim.client.post("/v1/responses", json=BODY)  # warm: imports, first-call caches
        if record is not None:
            await shim.written()
        start = time.process_time()
        for _ in range(requests):
            response = await shim.client.post("/v1/responses", json=BODY)
            assert response.status_code == 200, response.text
        if record is not None:
            await shim.written()
        spent = time.process_time() - start
    finally:
        await shim.aclose()
    if record is not None:
        cases = list(record.glob("*/*/*"))
        assert len(cases) == requests + 1, f"{len(cases)} cases written"
    return spent / requests


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--into", type=Path, default=None, help="where the temporary record folders go")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the access log costs the same in both modes; keep the output short
    off: list[float] = []
    on: list[float] = []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=args.into) as tmp:
            modes = [None, Path(tmp) / "rec"] if n % 2 == 0 else [Path(tmp) / "rec", None]
            for record in modes:
                (off if record is None else on).append(await one_round(record, args.requests))
    ms_off = statistics.median(off) * 1000
    ms_on = statistics.median(on) * 1000
    print(
        f"recording off: {ms_off:.2f} ms CPU per request (rounds: {', '.join(f'{x * 1000:.2f}' for x in off)})"
    )
    print(
        f"recording on:  {ms_on:.2f} ms CPU per request (rounds: {', '.join(f'{x * 1000:.2f}' for x in on)})"
    )
    print(f"cost: {ms_on - ms_off:+.2f} ms CPU per request ({(ms_on / ms_off - 1) * 100:+.0f}%)")


if __name__ == "__main__":
    asyncio.run(main())

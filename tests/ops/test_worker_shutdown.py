"""``shim serve --workers 2`` stopped by SIGTERM or SIGINT while streams are in flight: the
workers stop accepting, every stream still ends with ``response.completed``, and the command
exits 0 (the supervisor in shim/cli/supervisor.py; uvicorn's graceful shutdown in each worker).

The streams come from the fault upstream's ``soak`` answer (40 pieces, one every 50 ms), several
at once on fresh connections so that both workers hold some.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, Served, serve_script, serve_shim, stop

STREAMS = 6
BODY = {"model": "soak", "input": "Say hello.", "stream": True, "store": False}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("upstream") / "upstream.log"
    served = serve_script(ROOT / "tests" / "support" / "fault_upstream.py", log, what="the fault upstream")
    yield served
    stop(served.proc)


def _stream(base_url: str, started: threading.Semaphore, bodies: list[bytes]) -> None:
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{base_url}/responses", json=BODY) as response,
    ):
        pieces = response.iter_bytes()
        first = next(pieces)
        started.release()
        bodies.append(first + b"".join(pieces))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_streams_in_flight_finish_when_the_workers_stop(
    tmp_path: Path, upstream: Served, sig: signal.Signals
) -> None:
    shim = serve_shim(
        tmp_path,
        "--upstream",
        upstream.base_url,
        "--dialect",
        "openai",
        "--workers",
        "2",
        "--store",
        "memory://",
        timeout=90,
    )
    try:
        started, bodies = threading.Semaphore(0), list[bytes]()
        threads = [
            threading.Thread(target=_stream, args=(shim.base_url, started, bodies)) for _ in range(STREAMS)
        ]
        for thread in threads:
            thread.start()
        for _ in threads:
            assert started.acquire(timeout=30), shim.log_tail()
        shim.proc.send_signal(sig)
        for thread in threads:
            thread.join(30)
        assert len(bodies) == STREAMS, shim.log_tail()
        assert all(b"response.completed" in body for body in bodies), shim.log_tail()
        assert shim.proc.wait(30) == 0, shim.log_tail()
    finally:
        shim.stop()

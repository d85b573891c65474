"""The supervisor of ``shim serve --workers N`` (shim/cli/supervisor.py), on tiny apps
(tests/support/worker_apps.py) so that workers start in a second: one listening socket per worker,
a dead worker replaced on its socket, graceful stops on SIGINT/SIGTERM with requests in flight,
SIGHUP/SIGTTIN/SIGTTOU, a worker that cannot start, and the shared-socket fallback.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from shim.cli import supervisor
from shim.cli.supervisor import listen
from tests.support.processes import ROOT, free_port, spawn, stop, tail

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="Linux: signals and /proc")

REQUESTS = 40  # fresh connections: each lands on a worker by the kernel's hash (2**-39: all on one)


class Workers:
    def __init__(self, tmp_path: Path, app: str, workers: int, *flags: str) -> None:
        self.port = free_port()
        self.log = tmp_path / "workers.log"
        argv = [sys.executable, "-m", "tests.support.worker_apps", str(self.port), app, str(workers), *flags]
        self.proc = spawn(argv, self.log, cwd=ROOT)

    def pids(self) -> set[int]:
        """The workers that answer ``REQUESTS`` requests, each on its own connection."""
        with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            return {int(client.get(f"http://127.0.0.1:{self.port}/").text) for _ in range(REQUESTS)}

    def listening_sockets(self) -> int:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
        return sum(
            1 for ln in lines if ln.split()[3] == "0A" and int(ln.split()[1].split(":")[1], 16) == self.port
        )

    def until(self, what: str, check: Callable[[], bool], timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail(f"{what}: not within {timeout} s (exit {self.proc.poll()}):\n{tail(self.log)}")
            time.sleep(0.2)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    served = Workers(tmp_path, "pid_app", 2)
    served.until("two workers answer", lambda: _safe(lambda: len(served.pids()) == 2))
    yield served
    stop(served.proc)


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except httpx.TransportError:
        return False


def test_each_worker_listens_on_its_own_socket(workers: Workers) -> None:
    assert len(workers.pids()) == 2
    assert workers.listening_sockets() == 2


def test_the_workers_share_one_socket_without_reuseport(tmp_path: Path) -> None:
    served = Workers(tmp_path, "pid_app", 2, "--shared")
    try:
        served.until("an answer", lambda: _safe(lambda: len(served.pids()) >= 1))
        assert served.listening_sockets() == 1
    finally:
        stop(served.proc)
    assert served.proc.returncode == 0, tail(served.log)


def test_a_killed_worker_is_replaced_on_its_socket(workers: Workers) -> None:
    before = workers.pids()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    # Requests hashed to the dead worker's socket wait there for its replacement: none fails.
    workers.until("a replacement answers", lambda: len(workers.pids() - before) == 1)
    after = workers.pids()
    assert victim not in after and len(after) == 2
    assert workers.listening_sockets() == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_lets_requests_in_flight_finish(workers: Workers, sig: signal.Signals) -> None:
    with httpx.stream("GET", f"http://127.0.0.1:{workers.port}/slow", timeout=10) as response:
        pieces = response.iter_bytes()
        first = next(pieces)
        workers.proc.send_signal(sig)
        body = first + b"".join(pieces)
    assert body.startswith(b"0123456789"), body
    assert workers.proc.wait(30) == 0, tail(workers.log)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{workers.port}/", timeout=2)


def test_sighup_replaces_every_worker_one_by_one(workers: Workers) -> None:
    before = workers.pids()
    workers.proc.send_signal(signal.SIGHUP)
    workers.until("new workers answer", lambda: not workers.pids() & before)  # no request fails meanwhile
    assert len(workers.pids()) == 2


def test_sighup_under_load_drops_no_request(workers: Workers) -> None:
    """Fresh connections keep coming while the workers are replaced: a connection accepted an
    instant before its worker began to stop still gets its answer (``supervisor._Server``)."""
    failures: list[str] = []
    answered = 0
    done = threading.Event()

    def hammer() -> None:
        nonlocal answered
        with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not done.is_set():
                try:
                    client.get(f"http://127.0.0.1:{workers.port}/").raise_for_status()
                    answered += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            before = workers.pids()
            workers.proc.send_signal(signal.SIGHUP)
            workers.until("new workers answer", lambda: not workers.pids() & before)  # noqa: B023
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    assert answered > 100 and failures == [], (answered, failures[:5])


def test_sigttin_adds_a_worker_and_sigttou_removes_one(workers: Workers) -> None:
    workers.proc.send_signal(signal.SIGTTIN)
    workers.until("three workers answer", lambda: len(workers.pids()) == 3)
    assert workers.listening_sockets() == 3
    workers.proc.send_signal(signal.SIGTTOU)
    # A connection queued on the removed worker's socket as it closes is reset (docs/operations.md).
    workers.until("two workers answer", lambda: _safe(lambda: len(workers.pids()) == 2))
    assert workers.listening_sockets() == 2 and len(workers.pids()) == 2


def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    served = Workers(tmp_path, "failing_app", 2)
    try:
        assert served.proc.wait(60) == 1, tail(served.log)
    finally:
        stop(served.proc)
    assert "failed to start" in tail(served.log)


def test_listen_port_zero_gives_every_socket_the_same_port() -> None:
    sockets, reason = listen("127.0.0.1", 0, 3, 16)
    try:
        assert reason is None
        ports = {s.getsockname()[1] for s in sockets}
        assert len(sockets) == 3 and len(ports) == 1 and ports != {0}
    finally:
        for sock in sockets:
            sock.close()


def test_listen_on_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        sockets, _ = listen("::1", 0, 2, 16)
    except OSError as exc:
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            pytest.skip(f"no IPv6 loopback here: {exc}")
        raise
    try:
        assert [s.family for s in sockets] == [socket.AF_INET6] * 2
    finally:
        for sock in sockets:
            sock.close()


def test_listen_falls_back_to_one_socket_without_reuseport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "_REUSEPORT", None)
    sockets, reason = listen("127.0.0.1", 0, 2, 16)
    sockets[0].close()
    assert len(sockets) == 1 and reason == "this platform has no SO_REUSEPORT"


def test_listen_on_a_taken_port_raises() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError) as caught:
            listen("127.0.0.1", taken.getsockname()[1], 2, 16)
    assert caught.value.errno == errno.EADDRINUSE

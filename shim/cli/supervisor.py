"""``shim serve --workers N``: N uvicorn worker processes, each with its own listening socket.

uvicorn's own supervisor hands every worker one shared listening socket. A load generator or a
client pool opens its kept-alive connections in a burst, and the worker that wakes first accepts
the whole accept queue (asyncio and libuv accept until it is empty), so one worker could serve a
whole run's connections while the other idled: two workers were no faster than one (issue 18).
Here each worker slot gets its own socket bound with ``SO_REUSEPORT``, and the kernel spreads new
connections over the slots by a hash of their addresses, whichever worker is awake.

The parent binds every socket and keeps it open: a worker that dies is replaced on the same
socket, so the connections queued on it wait for the replacement instead of being reset. Without
``SO_REUSEPORT`` (not Linux or the BSDs, or the kernel refuses it) the slots share one socket, as
uvicorn's supervisor did, and ``listen`` says why (``shim serve`` prints it as a warning).

Otherwise it behaves as uvicorn's supervisor (``uvicorn.supervisors.Multiprocess``): workers are
spawned; the parent pings each one every half second and replaces a worker that died or does not
answer within ``timeout_worker_healthcheck``; a worker that exits with uvicorn's start-up failure
status stops everything (the next one would fail the same way); SIGINT/SIGTERM stop the workers
gracefully (each finishes its in-flight requests within ``timeout_graceful_shutdown``); SIGHUP
replaces the workers one by one, each once its replacement is ready; SIGTTIN/SIGTTOU add or remove one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

import uvicorn
from uvicorn.config import STARTUP_FAILURE

__all__ = ["Supervisor", "listen"]

logger = logging.getLogger("uvicorn.error")
_SPAWN = multiprocessing.get_context("spawn")
_SIGNALS = [
    getattr(signal, f"SIG{n}") for n in ("INT", "TERM", "HUP", "TTIN", "TTOU") if hasattr(signal, f"SIG{n}")
]
_REUSEPORT: int | None = getattr(socket, "SO_REUSEPORT", None)
_HEALTHCHECK = 5.0  # s; uvicorn's default, for versions without ``timeout_worker_healthcheck``


def _bind(host: str, port: int, backlog: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn chooses
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and _REUSEPORT is not None:
            sock.setsockopt(socket.SOL_SOCKET, _REUSEPORT, 1)
        sock.bind((host, port))
        # Listening now, not once its worker has started: a bound socket that does not listen yet
        # is not in the kernel's SO_REUSEPORT group, and every connection made meanwhile would go
        # (and stay) with the workers that had started. Queued here, they wait for theirs.
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def listen(host: str, port: int, count: int, backlog: int) -> tuple[list[socket.socket], str | None]:
    """``count`` sockets bound to ``host:port`` with ``SO_REUSEPORT`` (port 0: the first one's
    port for all), or one socket and why it could not be more. Raises ``OSError`` as ``bind``."""
    if _REUSEPORT is None:
        return [_bind(host, port, backlog, reuse_port=False)], "this platform has no SO_REUSEPORT"
    try:
        first = _bind(host, port, backlog, reuse_port=True)
    except OSError as exc:
        if exc.errno not in (errno.ENOPROTOOPT, errno.EINVAL):
            raise  # taken, or not an address of this machine: the caller's error
        return [_bind(host, port, backlog, reuse_port=False)], f"SO_REUSEPORT refused ({exc.strerror})"
    sockets = [first]
    try:
        port = first.getsockname()[1]
        sockets += [_bind(host, port, backlog, reuse_port=True) for _ in range(count - 1)]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets, None


class _Server(uvicorn.Server):
    """uvicorn's server, stopping in two steps. uvicorn's graceful stop closes at once every
    connection that has no request under way, and that includes one accepted an instant before
    whose request bytes are already in its socket: that client would see the connection close
    unanswered (seen while SIGHUP replaced the workers). Here the worker stops accepting first and
    lets the loop read what already arrived, so such a request is answered; its socket stays open
    in the parent, and what is still queued there waits for the next worker."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        await asyncio.sleep(_ACCEPTED_GRACE)
        await super().shutdown(sockets)


_ACCEPTED_GRACE = 0.05  # seconds: a few loop turns, for requests already on accepted connections


def _serve_worker(config: uvicorn.Config, sock: socket.socket, pings: Connection) -> None:
    """A worker process: answer the parent's pings (has the server started?) and serve ``sock``."""
    config.configure_logging()
    server = _Server(config)

    def answer() -> None:
        try:
            while pings.recv():
                pings.send(server.started)
        except (EOFError, OSError):
            return  # the parent is gone

    threading.Thread(target=answer, daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises a captured SIGINT when done
        server.run(sockets=[sock])


class _Worker:
    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        self.sock = sock
        self.pings, theirs = _SPAWN.Pipe()
        self.process: SpawnProcess = _SPAWN.Process(target=_serve_worker, args=(config, sock, theirs))
        self.process.start()
        theirs.close()

    def started(self, timeout: float) -> bool | None:
        """Whether its server has started; None when it is dead or does not answer in time."""
        if not self.process.is_alive():
            return None
        try:
            self.pings.send(b"ping")
            return bool(self.pings.recv()) if self.pings.poll(timeout) else None
        except (OSError, EOFError):
            return None

    def send(self, sig: int) -> None:
        if self.process.exitcode is None and self.process.pid is not None:
            os.kill(self.process.pid, sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: uvicorn's graceful shutdown; SIGKILL for a hung worker."""
        self.send(sig)
        self.join()

    def join(self) -> None:
        self.process.join()
        self.pings.close()


class Supervisor:
    """Runs ``config``'s app (an import string) in one worker per socket (or ``workers`` on one)."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], workers: int) -> None:
        self.config = config
        self.healthcheck = float(getattr(config, "timeout_worker_healthcheck", _HEALTHCHECK))
        self.shared = len(sockets) < workers  # no SO_REUSEPORT: every worker on sockets[0]
        self.sockets = sockets
        self.workers: list[_Worker] = []
        self.count = workers
        self.failed = False
        self.should_exit = threading.Event()
        self.signals: list[int] = []

    def _socket(self, slot: int) -> socket.socket:
        if self.shared:
            return self.sockets[0]
        if slot == len(self.sockets):  # SIGTTIN: a new socket for a new slot
            host, port = self.sockets[0].getsockname()[:2]
            self.sockets.append(_bind(host, port, self.config.backlog, reuse_port=True))
        return self.sockets[slot]

    def run(self) -> int:
        """Until SIGINT/SIGTERM or a start-up failure; 1 after a failure, else 0."""
        for sig in _SIGNALS:
            signal.signal(sig, lambda sig, _frame: self.signals.append(sig))
        logger.info("Started parent process [%d]", os.getpid())
        try:
            self.workers = [_Worker(self.config, self._socket(slot)) for slot in range(self.count)]
            while not self.should_exit.wait(0.5):
                while self.signals:
                    self._on_signal(self.signals.pop(0))
                self._replace_dead()
        finally:
            for worker in self.workers:
                worker.send(signal.SIGTERM)  # all at once: they shut down side by side
            for worker in self.workers:
                worker.join()
            for sock in self.sockets:
                sock.close()
            logger.info("Stopping parent process [%d]", os.getpid())
        return 1 if self.failed else 0

    def _replace_dead(self) -> None:
        for slot, worker in enumerate(self.workers):
            if self.should_exit.is_set():
                return
            if worker.started(self.healthcheck) is not None:
                continue
            worker.stop(signal.SIGKILL)  # dead already, or hung
            if worker.process.exitcode == STARTUP_FAILURE:
                logger.error("Worker [%s] failed to start; stopping.", worker.process.pid)
                self.failed = True
                self.should_exit.set()
                return
            logger.warning(
                "Worker [%s] died (exit code %s); starting another.",
                worker.process.pid,
                worker.process.exitcode,
            )
            self.workers[slot] = _Worker(self.config, worker.sock)

    def _on_signal(self, sig: int) -> None:
        if sig in (signal.SIGINT, signal.SIGTERM):
            logger.info("Received %s, exiting.", signal.Signals(sig).name)
            self.should_exit.set()
        elif sig == signal.SIGHUP:
            logger.info("Received SIGHUP, restarting the workers one by one.")
            self._restart_all()
        elif sig == signal.SIGTTIN:
            self.workers.append(_Worker(self.config, self._socket(len(self.workers))))
            logger.info("Received SIGTTIN: %d workers.", len(self.workers))
        elif sig == signal.SIGTTOU and len(self.workers) > 1:
            retired = self.workers.pop()
            retired.stop()
            if not self.shared:  # connections still queued on it are reset (unless tcp_migrate_req)
                self.sockets.remove(retired.sock)
                retired.sock.close()
            logger.info("Received SIGTTOU: %d workers.", len(self.workers))

    def _restart_all(self) -> None:
        """Each worker is retired once its replacement on the same socket has started."""
        for slot, old in enumerate(self.workers):
            new = _Worker(self.config, old.sock)
            deadline = time.monotonic() + self.healthcheck
            while not new.started(1) and time.monotonic() < deadline and not self.should_exit.is_set():
                time.sleep(0.1)
            if not new.started(1):
                new.stop(signal.SIGKILL)
                logger.error(
                    "Worker [%s] did not start in time; keeping [%s].", new.process.pid, old.process.pid
                )
                return
            old.stop()
            self.workers[slot] = new

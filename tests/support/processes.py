"""Server subprocesses for the test suite: start one with its output in a log file, wait until it
answers HTTP, show the log's tail when it does not, stop it.

``serve_shim`` runs ``python -m shim serve`` on a free loopback port (a real socket, uvicorn and
the CLI's settings path, as a user's client sees it); ``serve_script`` runs one of the suite's
scripted upstreams (``python SCRIPT PORT ...``). Both return a ``Served``. A process that exits
or does not answer in time fails the test with the tail of its log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shim.cli.embedded import free_port

__all__ = [
    "Served",
    "free_port",
    "serve",
    "serve_script",
    "serve_shim",
    "shim_env",
    "spawn",
    "stop",
    "tail",
    "wait_http",
]

ROOT = Path(__file__).resolve().parents[2]


def spawn(
    argv: list[str], log: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log`` (a restart keeps the earlier run)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )


def tail(log: Path, limit: int = 4000) -> str:
    return log.read_bytes()[-limit:].decode("utf-8", "replace") if log.exists() else ""


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it is still running after ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30) -> None:
    """Return once ``url`` answers 200; fail the test if ``proc`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"{what} did not answer {url} within {timeout}s:\n{tail(log)}")
        time.sleep(0.1)


@dataclass
class Served:
    """A server subprocess: its ``.../v1`` base URL, the process, and the log it writes."""

    base_url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, limit: int = 4000) -> str:
        return tail(self.log, limit)

    def stop(self) -> None:
        stop(self.proc)


def serve(
    argv: list[str],
    port: int,
    log: Path,
    *,
    what: str,
    health: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Served:
    """Spawn ``argv`` (listening on ``port``) from the checkout and wait for ``health`` to answer."""
    proc = spawn(argv, log, env=env, cwd=ROOT)
    wait_http(f"http://127.0.0.1:{port}{health}", proc, what, log, timeout)
    return Served(f"http://127.0.0.1:{port}/v1", proc, log)


def shim_env(**extra: str) -> dict[str, str]:
    """This environment without any ``SHIM_*`` variable (the developer's own config stays out),
    plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIM_")}
    return {**env, **extra}


def serve_shim(
    workdir: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> Served:
    """``python -m shim serve --host 127.0.0.1 --port FREE ARGS``, its data and ``shim.log`` in
    ``workdir``; ``env`` adds variables (``SHIM_*`` ones included) to a clean environment."""
    port = free_port()
    base = {"SHIM_DATA_DIR": str(workdir / "data"), "SHIM_LOG_LEVEL": "warning", "SHIM_DIAGNOSTICS": "warn"}
    argv = [sys.executable, "-m", "shim", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    return serve(
        argv,
        port,
        workdir / "shim.log",
        what="shim serve",
        health="/healthz",
        env=shim_env(**{**base, **(env or {})}),
        timeout=timeout,
    )


def serve_script(
    script: Path, log: Path, *args: str, what: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> Served:
    """``python SCRIPT PORT ARGS``: a scripted upstream, ready once ``/v1/models`` answers.
    ``tests.support`` is importable in it (the checkout is on ``PYTHONPATH``)."""
    port = free_port()
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return serve(
        [sys.executable, str(script), str(port), *args],
        port,
        log,
        what=what,
        health="/v1/models",
        env={**os.environ, "PYTHONPATH": path, **dict(env or {})},
        timeout=timeout,
    )

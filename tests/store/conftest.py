"""Store fixtures: every backend the shim ships, Redis as a real ``redis-server`` subprocess.

``backend`` is parametrised over memory, diskcache and redis, so one contract suite holds all
three to the same guarantees. ``redis-server`` is started once per session on a free loopback
port with a temporary directory and no persistence; when it is not installed the Redis cases
skip locally with the reason and FAIL under ``CI=true`` (``scripts/install_redis.sh`` installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shim.store.backends import KeyValue, open_backend
from tests.support.processes import free_port, spawn, stop, tail
from tests.support.real_components import unavailable

BACKENDS = ("memory", "diskcache", "redis")
REDIS_HINT = "`bash scripts/install_redis.sh` installs it (root + apt-get)"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a private redis-server, stopped after the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server", "no redis-server on PATH", REDIS_HINT)
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    argv += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    proc = spawn(argv, workdir / "redis.log")
    try:
        _wait_for_redis(port, proc, workdir / "redis.log")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc, timeout=10)


def _wait_for_redis(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            unavailable("redis-server", f"it exited with {proc.returncode}: {tail(log, 2000)}", REDIS_HINT)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    unavailable("redis-server", f"it did not answer PING within 15s: {tail(log, 2000)}", REDIS_HINT)


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of ``kind``: its own directory, or its own key prefix in Redis."""
    if kind == "memory":
        return "memory://"
    if kind == "diskcache":
        return f"diskcache://{tmp_path / 'store'}"
    redis: str = request.getfixturevalue("redis_url")
    return f"{redis}?prefix=t{uuid.uuid4().hex[:12]}:"


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request.param, tmp_path, request)


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[KeyValue]:
    kv = open_backend(backend_url)
    try:
        yield kv
    finally:
        await kv.aclose()

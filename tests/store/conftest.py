"""Store fixtures: every backend the shim ships, Redis as a real ``redis-server`` subprocess.

``backend`` is parametrised over memory, diskcache and redis, so one contract suite holds all
three to the same guarantees. ``redis-server`` is started once per session on a free loopback
port with a temporary directory and no persistence; when it is not installed the Redis cases
skip locally with the reason and FAIL under ``CI=true`` (``scripts/install_redis.sh`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from shim.embedded import free_port
from shim.store.backends import KeyValue, open_backend

IN_CI = os.environ.get("CI") == "true"
BACKENDS = ("memory", "diskcache", "redis")


def _unavailable(reason: str) -> NoReturn:
    message = f"redis-server unavailable: {reason}"
    if IN_CI:
        pytest.fail(
            f"{message} (CI=true: a missing real component fails; scripts/install_redis.sh installs it)"
        )
    print(f"\nSKIP redis: {message}", file=sys.stderr)
    pytest.skip(f"{message}; `bash scripts/install_redis.sh` installs it (root + apt-get)")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a private redis-server, stopped after the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("no redis-server on PATH")
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    argv += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    log = (workdir / "redis.log").open("wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_redis(port, proc, workdir / "redis.log")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_for_redis(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _unavailable(f"redis-server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    _unavailable(f"redis-server did not answer PING within 15s: {log.read_text()[-2000:]}")


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

"""HAProxy in front of shim replicas, for the load-balanced tests (tests/ops).

``haproxy_config`` writes the configuration: round-robin over the replicas, fast health checks on
``/healthz`` (a killed replica is out of rotation within a few hundred milliseconds), connect
failures retried and redispatched to another replica, and two headers for the tests:

- ``x-served-by`` on every answer names the replica that produced it;
- ``x-prefer-replica: NAME`` on a request sends it to that replica *while it is up*; when it is
  down the rule is skipped and round robin picks a live one. A test uses it to make a chain's turns
  alternate replicas deterministically, and to poll or cancel through "the other" replica.

``start_haproxy`` runs ``haproxy -db`` (foreground) on a free loopback port and waits until the
frontend answers. ``scripts/install_haproxy.sh`` installs the Debian package.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Served, free_port, spawn, stop, tail

__all__ = ["HAPROXY_HINT", "haproxy_binary", "haproxy_config", "start_haproxy"]

HAPROXY_HINT = "`bash scripts/install_haproxy.sh` (called by scripts/test.sh) installs it (root + apt-get)"


def haproxy_binary() -> str | None:
    """``haproxy`` on PATH, or where Debian puts it (``/usr/sbin`` is not on every user's PATH)."""
    found = shutil.which("haproxy")
    if found is None and os.access("/usr/sbin/haproxy", os.X_OK):
        found = "/usr/sbin/haproxy"
    return found


def haproxy_config(port: int, replicas: Mapping[str, int], *, check_ms: int = 100) -> str:
    """The configuration for a frontend on ``port`` over ``replicas`` (name -> port)."""
    servers = "\n".join(f"    server {name} 127.0.0.1:{p}" for name, p in replicas.items())
    prefer = "\n".join(
        f"    use-server {name} if {{ req.hdr(x-prefer-replica) -m str {name} }}" for name in replicas
    )
    return f"""\
global
    maxconn 1024

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout queue 5s
    # A replica that refuses the connection (killed) costs a retry on another, not an error.
    retries 3
    option redispatch 1

frontend shim
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter {check_ms}ms fall 1 rise 2
    http-response set-header x-served-by %[srv_name]
{prefer}
{servers}
"""


def start_haproxy(workdir: Path, replicas: Mapping[str, int], *, timeout: float = 15) -> Served:
    """HAProxy over ``replicas`` on a free port; its ``.../v1`` base URL once a replica answers
    ``/healthz`` through it. Fails the test (with HAProxy's log) if it exits or never answers."""
    binary = haproxy_binary()
    assert binary is not None, "check haproxy_binary() first"
    port = free_port()
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(port, replicas))
    log = workdir / "haproxy.log"
    proc = spawn([binary, "-db", "-f", str(config)], log)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"haproxy exited with {proc.returncode}:\n{tail(log)}\n{config.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return Served(f"http://127.0.0.1:{port}/v1", proc, log)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"haproxy did not answer within {timeout}s:\n{tail(log)}")
        time.sleep(0.05)

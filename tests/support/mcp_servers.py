"""Real MCP servers for the hosted-tool tests: ``tests/support/mcp_server.py`` run under the
``mcp`` 1.x SDK (this venv) over streamable HTTP and over SSE, and under 2.x (its own venv,
``scripts/install_mcp_servers.sh``) over streamable HTTP. A missing 2.x venv skips locally and
fails under ``CI=true`` (``real_components.unavailable``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port, spawn, stop, tail
from tests.support.real_components import unavailable

SCRIPT = Path(__file__).resolve().parent / "mcp_server.py"
MCP2_VENV = Path(os.environ.get("SHIM_MCP2_VENV", Path.home() / ".cache" / "shim" / "mcp2"))
MCP2_HINT = "`bash scripts/install_mcp_servers.sh` (called by scripts/test.sh) makes its venv"


@dataclass(frozen=True)
class McpServers:
    v1: str  # streamable HTTP, mcp 1.x
    v2: str  # streamable HTTP, mcp 2.x
    sse: str  # SSE, mcp 1.x, at /events: reached by the fallback from streamable HTTP


def _wait(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"MCP server exited with {proc.returncode}:\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    stop(proc)
    pytest.fail(f"MCP server did not listen on {port}:\n{tail(log)}")


@contextmanager
def running_mcp_servers(logs: Path) -> Iterator[McpServers]:
    python2 = MCP2_VENV / "bin" / "python"
    if not python2.exists():
        unavailable("MCP server on mcp 2.x", f"no venv at {MCP2_VENV}", MCP2_HINT)
    plan = [(sys.executable, "streamable-http"), (str(python2), "streamable-http"), (sys.executable, "sse")]
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for n, (python, transport) in enumerate(plan):
            port = free_port()
            log = logs / f"mcp-{n}.log"
            proc = spawn([python, str(SCRIPT), str(port), transport], log)
            procs.append(proc)
            _wait(port, proc, log)
            urls.append(f"http://127.0.0.1:{port}/{'events' if transport == 'sse' else 'mcp'}")
        yield McpServers(*urls)
    finally:
        for proc in procs:
            stop(proc)

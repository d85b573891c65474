"""Starting and stopping the processes under test, each pinned to its cores with ``taskset``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from shim.cli.embedded import free_port

__all__ = ["Proc", "Target", "free_port", "start", "start_target"]

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.unlink(missing_ok=True)  # kept only when start-up failed (the error quotes it)


def _wait_ready(proc: Proc, probe: tuple[str, bytes] | None, timeout: float) -> None:
    """Until the port answers (and ``probe`` POST, if given, returns 2xx/4xx) or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited ({proc.popen.returncode}); log: {proc.log.read_text()[-2000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", proc.port), timeout=0.5):
                pass
            if probe is None:
                return
            path, body = probe
            req = urllib.request.Request(
                f"http://127.0.0.1:{proc.port}{path}",
                data=body,
                headers={"content-type": "application/json", "authorization": "Bearer bench"},
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    resp.read()
                return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} not ready after {timeout}s; log: {proc.log.read_text()[-2000:]}")


def start(
    name: str,
    cmd: list[str],
    port: int,
    cpus: str,
    *,
    env: dict[str, str] | None = None,
    probe: tuple[str, bytes] | None = None,
    timeout: float = 30.0,
    cwd: Path = ROOT,
) -> Proc:
    log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    with log.open("wb") as out:
        popen = subprocess.Popen(
            ["taskset", "-c", cpus, *cmd], cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=out
        )
    proc = Proc(name, popen, port, log)
    try:
        _wait_ready(proc, probe, timeout)
    except Exception:
        log_text = log.read_text()[-2000:]
        proc.stop()
        raise RuntimeError(f"{name} did not start: {log_text}") from None
    return proc


def start_upstream(cpus: str, tokens: int, delay: float, extra: tuple[str, ...] = ()) -> Proc:
    """``bench.fake_upstream``; ``extra``: more of its options (``--tool-call``)."""
    port = free_port()
    cmd = [
        PY,
        "-m",
        "bench.fake_upstream",
        "--port",
        str(port),
        "--tokens",
        str(tokens),
        "--delay",
        str(delay),
        *extra,
    ]
    return start("upstream", cmd, port, cpus)


@dataclass
class Target:
    """A comparator: how to start it in front of an upstream, and which API path it is called on."""

    name: str
    kind: str  # direct | passthrough | floor | shim | litellm
    workers: int = 1
    extra: dict[str, str] = field(default_factory=dict)
    root: Path | None = None  # another checkout of the shim (the baseline commit), else this one


def start_target(
    target: Target, upstream_url: str, upstream_kind: str, cpus: str, probe: tuple[str, bytes], data_dir: Path
) -> Proc:
    port = free_port()
    if target.kind == "passthrough":
        cmd = [PY, "-m", "bench.passthrough", "--upstream", upstream_url, "--port", str(port)]
        return start(target.name, cmd, port, cpus, probe=probe)
    if target.kind == "floor":  # bench/floor.py: a raw ASGI relay, the stack's least
        cmd = [PY, "-m", "bench.floor", "--upstream", upstream_url, "--port", str(port)]
        return start(target.name, cmd, port, cpus, probe=probe)
    if target.kind == "shim":
        cmd = [PY, "-m", "shim", "serve", "--upstream", upstream_url, "--dialect", "openai"]
        cmd += ["--kind", upstream_kind, "--port", str(port), "--store", "memory://"]
        if target.workers > 1:
            cmd += ["--workers", str(target.workers)]
        env = {
            "SHIM_DATA_DIR": str(data_dir),
            "SHIM_SECRET": "bench-secret-0123456789abcdef0123456789abcdef",
            "SHIM_LOG_LEVEL": "warning",
            **target.extra,
        }
        if target.root is not None:  # that checkout's code wins over the installed one
            env["PYTHONPATH"] = str(target.root)
        return start(target.name, cmd, port, cpus, env=env, probe=probe, cwd=target.root or ROOT)
    if target.kind == "litellm":
        from bench.litellm_proxy import litellm_command

        cmd, env = litellm_command(upstream_url, port, data_dir)
        return start(target.name, cmd, port, cpus, env=env, probe=probe, timeout=120.0)
    raise ValueError(f"unknown target kind {target.kind!r}")

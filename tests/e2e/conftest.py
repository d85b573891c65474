"""End-to-end fixtures: a real llama.cpp upstream and the shim itself as a real server.

The upstream is ``shim.embedded.EmbeddedUpstream`` (llama-cpp-python serving Gemma 3 270M), the
one ``shim serve`` starts when no upstream is configured. ``scripts/test.sh`` installs it; a
plain ``pytest`` never compiles anything: when llama-cpp-python or the model is missing these
tests skip with the reason, except in CI (``CI=true``), where a missing real component fails.

The shim runs as ``python -m shim serve`` in a subprocess, so the tests cross a real socket,
uvicorn and the CLI's settings path, exactly as a user's client does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from shim.embedded import (
    DIALECT,
    MODEL_ALIAS,
    EmbeddedUpstream,
    EmbeddedUpstreamError,
    free_port,
    is_available,
)

MODEL = MODEL_ALIAS
IN_CI = os.environ.get("CI") == "true"


def _unavailable(reason: str) -> NoReturn:
    message = f"real llama upstream unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing real component fails; scripts/test.sh installs it)")
    print(f"\nSKIP e2e: {message}", file=sys.stderr)
    pytest.skip(f"{message}; `bash scripts/test.sh` or `python -m shim.embedded ensure` installs it")


@pytest.fixture(scope="session")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (``.../v1``) of a running llama-cpp-python server."""
    ok, why = is_available()
    if not ok:
        _unavailable(why)
    log = tmp_path_factory.mktemp("llama") / "server.log"
    upstream = EmbeddedUpstream(install=False, log_path=log)
    try:
        url = upstream.start()
    except EmbeddedUpstreamError as exc:
        _unavailable(str(exc))
    try:
        # The first generation pages the model in and warms llama.cpp up (seconds): do it here,
        # not in whichever test happens to run first.
        warm = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        httpx.post(f"{url}/chat/completions", json=warm, timeout=120).raise_for_status()
        yield url
    finally:
        upstream.stop()


@dataclass
class ShimServer:
    base_url: str  # ".../v1"
    proc: subprocess.Popen[bytes]
    log: Path
    dialect: str

    def log_tail(self, limit: int = 4000) -> str:
        return self.log.read_bytes()[-limit:].decode("utf-8", "replace")


def _start_shim(upstream: str, dialect: str, workdir: Path, extra: tuple[str, ...] = ()) -> ShimServer:
    port = free_port()
    log = workdir / "shim.log"
    env = {
        **os.environ,
        "SHIM_DATA_DIR": str(workdir / "data"),
        "SHIM_LOG_LEVEL": "warning",
        "SHIM_DIAGNOSTICS": "warn",
    }
    for name in ("SHIM_CONFIG", "SHIM_UPSTREAM_URL", "SHIM_API_KEYS", "SHIM_STORE"):
        env.pop(name, None)
    argv = [
        sys.executable,
        "-m",
        "shim",
        "serve",
        "--upstream",
        upstream,
        "--dialect",
        dialect,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--store",
        "memory://",
        *extra,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = ShimServer(f"http://127.0.0.1:{port}/v1", proc, log, dialect)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"shim serve exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"shim serve did not answer /healthz within 30s:\n{server.log_tail()}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def shim(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    """The shim in front of llama, with the dialect ``shim serve`` uses for its embedded upstream."""
    server = _start_shim(llama_url, DIALECT, tmp_path_factory.mktemp("shim"))
    yield server
    _stop(server.proc)


@pytest.fixture(scope="session")
def shim_llamacpp(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    """The same upstream behind the generic ``llamacpp`` dialect (content-part arrays for users)."""
    server = _start_shim(llama_url, "llamacpp", tmp_path_factory.mktemp("shim-llamacpp"))
    yield server
    _stop(server.proc)


@pytest.fixture
def client(shim: ShimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shim.base_url, timeout=120) as c:
        yield c


# --- SSE --------------------------------------------------------------------------------------


@dataclass
class SSE:
    """One parsed stream: raw ``data`` payloads, decoded events, and the framing facts."""

    content_type: str
    raw: list[bytes] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    event_names: list[str] = field(default_factory=list)
    done: bool = False
    after_done: list[str] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    @property
    def final(self) -> dict[str, Any]:
        response: dict[str, Any] = self.events[-1]["response"]
        return response


def stream_sse(client: httpx.Client, body: dict[str, Any]) -> SSE:
    """POST ``/responses`` with ``stream: true`` and parse the SSE body (comments skipped)."""
    with client.stream("POST", "/responses", json={**body, "stream": True}) as resp:
        assert resp.status_code == 200, resp.read()
        sse = SSE(content_type=resp.headers.get("content-type", ""))
        name: str | None = None
        data: list[str] = []
        for line in resp.iter_lines():
            if sse.done:
                if line:
                    sse.after_done.append(line)
                continue
            if line.startswith(":"):
                continue
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].lstrip())
            elif line == "" and data:
                payload = "\n".join(data)
                data = []
                if payload == "[DONE]":
                    sse.done = True
                    continue
                sse.raw.append(payload.encode())
                sse.events.append(json.loads(payload))
                sse.event_names.append(name or "")
                name = None
    return sse

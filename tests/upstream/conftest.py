"""Fixtures of the failover suites: the fault suites' isolation and fault upstream, plus healthy
scripted upstreams (Chat and Responses) in their own processes to fail over to."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_fixtures import fault, isolated
from tests.support.processes import ROOT, Served, free_port, spawn, stop, tail

__all__ = ["chat_fallback", "fault", "isolated", "responses_fallback", "start_scripted"]


def start_scripted(script: str, log: Path, port: int | None = None) -> Served:
    """``python tests/support/SCRIPT PORT`` from the checkout, once it accepts connections (the
    scripts share no health path)."""
    port = port or free_port()
    proc = spawn([sys.executable, str(ROOT / "tests" / "support" / script), str(port)], log, cwd=ROOT)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{script} exited with {proc.returncode}:\n{tail(log)}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/_stats", timeout=1)
            return Served(f"http://127.0.0.1:{port}/v1", proc, log)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                stop(proc)
                pytest.fail(f"{script} did not start:\n{tail(log)}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def chat_fallback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    served = start_scripted("scripted_chat.py", tmp_path_factory.mktemp("chat") / "upstream.log")
    yield served.base_url
    served.stop()


@pytest.fixture(scope="module")
def responses_fallback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    served = start_scripted("scripted_responses.py", tmp_path_factory.mktemp("responses") / "upstream.log")
    yield served.base_url
    served.stop()

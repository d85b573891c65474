"""End-to-end fixtures: a real llama.cpp upstream and the shim itself as a real server.

The upstream is ``shim.cli.embedded.EmbeddedUpstream`` (llama-cpp-python serving Gemma 3 270M), the
one ``shim serve`` starts when no upstream is configured. ``scripts/test.sh`` installs it; a
plain ``pytest`` never compiles anything: when llama-cpp-python or the model is missing these
tests skip with the reason, except in CI (``CI=true``), where a missing real component fails.

The shim runs as ``python -m shim serve`` in a subprocess, so the tests cross a real socket,
uvicorn and the CLI's settings path, exactly as a user's client does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.cli.embedded import DIALECT, MODEL_ALIAS
from tests.support.processes import Served, serve_shim
from tests.support.real_components import running_llama

MODEL = MODEL_ALIAS


@pytest.fixture(scope="session")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (``.../v1``) of a running llama-cpp-python server."""
    with running_llama(tmp_path_factory.mktemp("llama") / "server.log") as url:
        yield url


# The shim under test: ``python -m shim serve`` in a subprocess (tests.support.processes).
ShimServer = Served


def _start_shim(upstream: str, dialect: str, workdir: Path, extra: tuple[str, ...] = ()) -> ShimServer:
    args = ("--upstream", upstream, "--dialect", dialect, "--store", "memory://", *extra)
    return serve_shim(workdir, *args)


@pytest.fixture(scope="session")
def shim(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    """The shim in front of llama, with the dialect ``shim serve`` uses for its embedded upstream."""
    server = _start_shim(llama_url, DIALECT, tmp_path_factory.mktemp("shim"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shim_llamacpp(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    """The same upstream behind the generic ``llamacpp`` dialect (content-part arrays for users)."""
    server = _start_shim(llama_url, "llamacpp", tmp_path_factory.mktemp("shim-llamacpp"))
    yield server
    server.stop()


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


def output_text(resource: dict[str, Any]) -> str:
    """The text of a Responses resource's messages."""
    return "".join(
        part["text"]
        for item in resource["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


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

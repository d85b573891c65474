"""Real clients against ``shim serve``: the fixtures.

The upstreams, each behind its own ``python -m shim serve`` subprocess (a real socket, uvicorn
and the CLI's settings path, as a user's client sees it):

- ``shim_llama``: the real llama.cpp upstream (``shim.embedded.EmbeddedUpstream``, Gemma 3 270M,
  ``n_ctx`` 16384 because Codex's prompt needs it). Plain text, streaming, and tool calls the
  client can force (``tool_choice``) run here. The route caps output at
  ``LLAMA_MAX_OUTPUT_TOKENS`` for clients that send no limit (Codex): the base model rarely
  stops on its own and llama-cpp-python's default limit is the whole context.
- ``shim_scripted``: ``scripted_shell.py``, the test suite's scripted Chat model that calls the
  offered tool. Tool round trips the client cannot force run here: the suite tests the shim,
  not whether a 270M base model decides to call a tool.
- ``shim_over_responses``: the Chat clients' direction, a ``responses`` route over
  ``scripted_responses_shell.py`` (the scripted Open Responses model; it calls the offered tool
  and reports the bodies it received); ``shim_over_reasoning``, the same over its reasoning
  variant (reasoning continuity across a Chat client's turns); ``shim_chain``, a ``responses``
  route over ``shim_llama``'s ``/v1/responses``: Chat clients reach the real model through two
  shims.

Missing pieces (llama-cpp-python or the model; node, npm packages) skip locally with the reason
printed, and fail when ``CI=true``. ``scripts/test.sh`` installs all of them
(``scripts/install_clients.sh`` for the npm side).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
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

IN_CI = os.environ.get("CI") == "true"
HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
LLAMA_MODEL = MODEL_ALIAS
SCRIPTED_MODEL = "scripted"
# Codex needs a 16k context (REFERENCE.md); the e2e fixture's 4096 is too small.
LLAMA_N_CTX = 16384
LLAMA_MAX_OUTPUT_TOKENS = 24


def unavailable(what: str, reason: str, hint: str) -> NoReturn:
    message = f"{what} unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing real component fails; {hint})")
    print(f"\nSKIP clients: {message}", file=sys.stderr)
    pytest.skip(f"{message}; {hint}", allow_module_level=True)


def require_module(name: str, package: str) -> Any:
    """Import a Python client, or skip (fail under CI) naming the PyPI package."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(package, str(exc), "it is in the `test` extra: pip install -e '.[test]'")


# --- upstreams --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    hint = "`bash scripts/test.sh` or `python -m shim.embedded ensure` installs it"
    ok, why = is_available()
    if not ok:
        unavailable("real llama upstream", why, hint)
    log = tmp_path_factory.mktemp("clients-llama") / "server.log"
    upstream = EmbeddedUpstream(install=False, log_path=log, n_ctx=LLAMA_N_CTX)
    try:
        url = upstream.start()
    except EmbeddedUpstreamError as exc:
        unavailable("real llama upstream", str(exc), hint)
    try:
        warm = {"model": LLAMA_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        httpx.post(f"{url}/chat/completions", json=warm, timeout=120).raise_for_status()
        yield url
    finally:
        upstream.stop()


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"{what} did not answer {url} within {timeout}s:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path, limit: int = 4000) -> str:
    return log.read_bytes()[-limit:].decode("utf-8", "replace") if log.exists() else ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def scripted_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("clients-scripted") / "scripted.log"
    argv = [sys.executable, str(HERE / "scripted_shell.py"), str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    _wait_http(f"{url}/models", proc, "the scripted upstream", log)
    yield url
    _stop(proc)


@dataclass
class ScriptedResponsesUpstream:
    """``scripted_responses_shell.py`` in a subprocess: the scripted Open Responses upstream."""

    base_url: str  # ".../v1"

    def requests(self) -> list[dict[str, Any]]:
        """Every body the shim POSTed to it so far, in order."""
        response = httpx.get(f"{self.base_url}/_requests", timeout=10)
        response.raise_for_status()
        return list(response.json())


def _scripted_responses(workdir: Path, *flags: str) -> Iterator[ScriptedResponsesUpstream]:
    port = free_port()
    log = workdir / "scripted.log"
    argv = [sys.executable, str(HERE / "scripted_responses_shell.py"), str(port), *flags]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    _wait_http(f"{url}/models", proc, "the scripted Responses upstream", log)
    yield ScriptedResponsesUpstream(url)
    _stop(proc)


def assert_reasoning_replayed(sent: dict[str, Any], call_id: str) -> None:
    """A Chat client resent a tool-call turn without its reasoning; the shim put the turn's
    reasoning item (``encrypted_content`` ``enc:<turn>``, the turn that made ``call_<turn>``)
    back in front of the call in the body it sent upstream."""
    items = sent["input"]
    at = next(i for i, item in enumerate(items) if item.get("type") == "function_call")
    assert items[at]["call_id"] == call_id
    reasoning = [item for item in items if item.get("type") == "reasoning"]
    assert reasoning == [items[at - 1]], items
    assert reasoning[0]["encrypted_content"] == f"enc:{call_id.removeprefix('call_')}"


@pytest.fixture(scope="session")
def scripted_responses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedResponsesUpstream]:
    yield from _scripted_responses(tmp_path_factory.mktemp("clients-scripted-responses"))


@pytest.fixture(scope="session")
def scripted_reasoning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedResponsesUpstream]:
    """The same model, reasoning first: a reasoning item with ``encrypted_content`` each turn."""
    yield from _scripted_responses(tmp_path_factory.mktemp("clients-scripted-reasoning"), "--reasoning")


# --- the shim ---------------------------------------------------------------------------------


@dataclass
class ShimServer:
    base_url: str  # ".../v1"
    model: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        return _tail(self.log)


def start_shim(workdir: Path, route: dict[str, Any], model: str) -> ShimServer:
    """``python -m shim serve --config`` with one catch-all route (``route`` adds its keys)."""
    port = free_port()
    config = workdir / "shim.toml"
    lines = ["[[routes]]", 'match = "*"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in route.items()]
    config.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "SHIM_DATA_DIR": str(workdir / "data"),
        "SHIM_LOG_LEVEL": "warning",
        "SHIM_DIAGNOSTICS": "warn",
    }
    for name in ("SHIM_CONFIG", "SHIM_UPSTREAM_URL", "SHIM_API_KEYS", "SHIM_STORE", "SHIM_DIALECT"):
        env.pop(name, None)
    argv = [sys.executable, "-m", "shim", "serve", "--config", str(config), "--port", str(port)]
    argv += ["--host", "127.0.0.1", "--store", "memory://"]
    log = workdir / "shim.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    _wait_http(f"http://127.0.0.1:{port}/healthz", proc, "shim serve", log)
    return ShimServer(f"http://127.0.0.1:{port}/v1", model, proc, log)


@pytest.fixture(scope="session")
def shim_llama(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    route = {"upstream": llama_url, "dialect": DIALECT, "max_output_tokens": LLAMA_MAX_OUTPUT_TOKENS}
    server = start_shim(tmp_path_factory.mktemp("clients-shim-llama"), route, LLAMA_MODEL)
    yield server
    _stop(server.proc)


@pytest.fixture(scope="session")
def shim_scripted(scripted_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    route = {"upstream": scripted_url, "dialect": "openai"}
    server = start_shim(tmp_path_factory.mktemp("clients-shim-scripted"), route, SCRIPTED_MODEL)
    yield server
    _stop(server.proc)


@pytest.fixture(scope="session")
def shim_over_responses(
    scripted_responses: ScriptedResponsesUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShimServer]:
    """Chat clients → the shim's ``responses`` route → the scripted Open Responses upstream."""
    route = {"upstream": scripted_responses.base_url, "kind": "responses", "dialect": "openai"}
    server = start_shim(tmp_path_factory.mktemp("clients-shim-over-responses"), route, SCRIPTED_MODEL)
    yield server
    _stop(server.proc)


@pytest.fixture(scope="session")
def shim_over_reasoning(
    scripted_reasoning: ScriptedResponsesUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShimServer]:
    """A ``responses`` route over the reasoning scripted model (reasoning continuity)."""
    route = {"upstream": scripted_reasoning.base_url, "kind": "responses", "dialect": "openai"}
    server = start_shim(tmp_path_factory.mktemp("clients-shim-over-reasoning"), route, SCRIPTED_MODEL)
    yield server
    _stop(server.proc)


@pytest.fixture(scope="session")
def shim_chain(shim_llama: ShimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    """Chat clients → this shim (``responses`` route) → ``shim_llama``'s ``/v1/responses``
    (a chat route, translating back) → the real llama upstream."""
    route = {"upstream": shim_llama.base_url, "kind": "responses", "dialect": "openai"}
    server = start_shim(tmp_path_factory.mktemp("clients-shim-chain"), route, LLAMA_MODEL)
    yield server
    _stop(server.proc)


# --- node -------------------------------------------------------------------------------------


@dataclass
class Node:
    node: str
    dir: Path

    def bin(self, name: str) -> Path:
        return self.dir / "node_modules" / ".bin" / name

    def run(self, script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
        """Run ``node/<script>``; it prints one JSON document on stdout, returned decoded."""
        proc = subprocess.run(
            [self.node, str(self.dir / script), *args],
            cwd=self.dir,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        out, err = proc.stdout.decode(), proc.stderr.decode()
        assert proc.returncode == 0, f"node {script} {' '.join(args)} exited {proc.returncode}:\n{err}\n{out}"
        return json.loads(out)


@pytest.fixture(scope="session")
def node() -> Node:
    hint = "`bash scripts/install_clients.sh` (called by scripts/test.sh) installs the npm clients"
    exe = shutil.which("node")
    if exe is None:
        unavailable("node", "no `node` on PATH (node >= 20 is needed)", hint)
    manifest = json.loads((NODE_DIR / "package.json").read_text())
    missing = [
        name
        for name in manifest["dependencies"]
        if not (NODE_DIR / "node_modules" / name / "package.json").is_file()
    ]
    if missing:
        unavailable(
            "npm clients", f"not installed in {NODE_DIR / 'node_modules'}: {', '.join(missing)}", hint
        )
    return Node(exe, NODE_DIR)

"""Real clients against ``shim serve``: the fixtures.

The upstreams, each behind its own ``python -m shim serve`` subprocess (a real socket, uvicorn
and the CLI's settings path, as a user's client sees it):

- ``shim_llama``: the real llama.cpp upstream (``shim.cli.embedded.EmbeddedUpstream``, Gemma 3 270M,
  ``n_ctx`` 16384 because Codex's prompt needs it). Plain text, streaming, and tool calls the
  client can force (``tool_choice``) run here. The route caps output at
  ``LLAMA_MAX_OUTPUT_TOKENS`` for clients that send no limit (Codex): the base model rarely
  stops on its own and llama-cpp-python's default limit is the whole context.
- ``shim_llama_functions``: the same model in llama-cpp-python's ``chatml-function-calling``
  format, where the model chooses tools itself, behind a route set up for a small model (loop
  guard, temperature 0, a stop for text answers) and a recording proxy: Codex and the Agents
  SDK run tool round trips over the real model here.
- ``shim_scripted``: ``scripted_shell.py``, the test suite's scripted Chat model that calls the
  offered tool. Tool round trips the client cannot force run here: the suite tests the shim,
  not whether a 270M base model decides to call a tool. ``shim_scripted_recorded``: the same
  with the recording proxy in front of the model (what the shim offered it).
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.cli.embedded import DIALECT, FUNCTIONS_CHAT_FORMAT, FUNCTIONS_DIALECT, MODEL_ALIAS
from tests.support.processes import Served, serve_script, serve_shim
from tests.support.real_components import CLIENTS_HINT, running_llama, unavailable
from tests.support.recording_proxy import RecordingProxy

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
LLAMA_MODEL = MODEL_ALIAS
SCRIPTED_MODEL = "scripted"
# Codex needs a 16k context (REFERENCE.md); the e2e fixture's 4096 is too small.
LLAMA_N_CTX = 16384
LLAMA_MAX_OUTPUT_TOKENS = 24
# The Chat clients' direction: a route whose upstream speaks Open Responses.
RESPONSES_ROUTE = {"kind": "responses", "dialect": "openai"}


def require_module(name: str, package: str) -> Any:
    """Import a Python client, or skip (fail under CI) naming the PyPI package."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(package, str(exc), "it is in the `test` extra: pip install -e '.[test]'")


# --- upstreams --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_llama(tmp_path_factory.mktemp("clients-llama") / "server.log", n_ctx=LLAMA_N_CTX) as url:
        yield url


@pytest.fixture(scope="session")
def scripted_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("clients-scripted") / "scripted.log"
    served = serve_script(HERE / "scripted_shell.py", log, what="the scripted upstream")
    yield served.base_url
    served.stop()


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
    script = HERE / "scripted_responses_shell.py"
    served = serve_script(script, workdir / "scripted.log", *flags, what="the scripted Responses upstream")
    yield ScriptedResponsesUpstream(served.base_url)
    served.stop()


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
class ShimServer(Served):
    """``shim serve`` in a subprocess, and the model name its clients ask for."""

    model: str


def start_shim(
    workdir: Path, route: dict[str, Any], model: str, env: dict[str, str] | None = None
) -> ShimServer:
    """``python -m shim serve --config`` with one catch-all route (``route`` adds its keys);
    ``env`` adds ``SHIM_*`` settings."""
    config = workdir / "shim.toml"
    lines = ["[[routes]]", 'match = "*"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in route.items()]
    config.write_text("\n".join(lines) + "\n")
    served = serve_shim(workdir, "--config", str(config), "--store", "memory://", env=env)
    return ShimServer(served.base_url, served.proc, served.log, model)


def _serve(workdir: Path, route: dict[str, Any], model: str) -> Iterator[ShimServer]:
    """A session fixture's body: the shim with ``route``, stopped at the end of the session."""
    server = start_shim(workdir, route, model)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shim_llama(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    route = {"upstream": llama_url, "dialect": DIALECT, "max_output_tokens": LLAMA_MAX_OUTPUT_TOKENS}
    yield from _serve(tmp_path_factory.mktemp("clients-shim-llama"), route, LLAMA_MODEL)


@dataclass
class RecordedShim:
    """``shim serve`` and the recording proxy between it and its upstream (what the shim sent)."""

    shim: ShimServer
    proxy: RecordingProxy


class LlamaFunctions(RecordedShim):
    """``shim serve`` over the real model in llama-cpp-python's ``chatml-function-calling``
    format, with the recording proxy that sits between the shim and llama."""


@pytest.fixture(scope="session")
def shim_llama_functions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaFunctions]:
    """The real model behind llama-cpp-python's ``chatml-function-calling`` format, where the
    model itself picks a message or a call (under a grammar). The route is set up as
    docs/upstreams.md advises for a small base model behind an agent: ``max_tool_rounds = 1``
    (this format never shows the model a tool's output, so it would call again forever),
    temperature 0 (Codex sends none; llama's own is 0.8), a newline stop and an output cap for
    the text answer (a base model does not end a turn), and a long first-byte timeout (Codex's
    ~7,500-token prompt with its tool schemas takes llama a minute or two on one thread, and
    this format answers only when done)."""
    work = tmp_path_factory.mktemp("clients-llama-functions")
    options = {"n_ctx": LLAMA_N_CTX, "chat_format": FUNCTIONS_CHAT_FORMAT}
    with running_llama(work / "server.log", **options) as url, RecordingProxy(url) as proxy:
        route = {
            "upstream": proxy.url,
            "dialect": FUNCTIONS_DIALECT,
            "max_tool_rounds": 1,
            "temperature": 0,
            "stop": ["\n"],
            "max_output_tokens": 64,
        }
        shim = start_shim(work, route, LLAMA_MODEL, env={"SHIM_TIMEOUT_FIRST_BYTE": "900"})
        yield LlamaFunctions(shim, proxy)
        shim.stop()


@pytest.fixture(scope="session")
def shim_scripted(scripted_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    route = {"upstream": scripted_url, "dialect": "openai"}
    yield from _serve(tmp_path_factory.mktemp("clients-shim-scripted"), route, SCRIPTED_MODEL)


@pytest.fixture(scope="session")
def shim_scripted_recorded(
    scripted_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RecordedShim]:
    """``shim_scripted`` with the recording proxy in front of the scripted model."""
    with RecordingProxy(scripted_url) as proxy:
        route = {"upstream": proxy.url, "dialect": "openai"}
        shim = start_shim(tmp_path_factory.mktemp("clients-shim-scripted-recorded"), route, SCRIPTED_MODEL)
        yield RecordedShim(shim, proxy)
        shim.stop()


@pytest.fixture(scope="session")
def shim_over_responses(
    scripted_responses: ScriptedResponsesUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShimServer]:
    """Chat clients → the shim's ``responses`` route → the scripted Open Responses upstream."""
    route = {"upstream": scripted_responses.base_url, **RESPONSES_ROUTE}
    yield from _serve(tmp_path_factory.mktemp("clients-shim-over-responses"), route, SCRIPTED_MODEL)


@pytest.fixture(scope="session")
def shim_over_reasoning(
    scripted_reasoning: ScriptedResponsesUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShimServer]:
    """A ``responses`` route over the reasoning scripted model (reasoning continuity)."""
    route = {"upstream": scripted_reasoning.base_url, **RESPONSES_ROUTE}
    yield from _serve(tmp_path_factory.mktemp("clients-shim-over-reasoning"), route, SCRIPTED_MODEL)


@pytest.fixture(scope="session")
def shim_chain(shim_llama: ShimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    """Chat clients → this shim (``responses`` route) → ``shim_llama``'s ``/v1/responses``
    (a chat route, translating back) → the real llama upstream."""
    route = {"upstream": shim_llama.base_url, **RESPONSES_ROUTE}
    yield from _serve(tmp_path_factory.mktemp("clients-shim-chain"), route, LLAMA_MODEL)


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
    hint = CLIENTS_HINT
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

"""Record ``fixtures/chat_over_responses/open-responses-server/*``: a third-party Open Responses provider.

The provider is ``open-responses-server`` from PyPI (an Open Responses API in front of any Chat
Completions server), pinned below and installed into its own venv under
``${SHIM_CACHE_DIR:-~/.cache/shim}/recorders/open-responses-server`` (it needs Python >= 3.12;
``--python`` picks the interpreter that builds the venv). The chain, all on loopback:

    Chat request --> shim (--upstream-kind responses) --> RecordingProxy --> open-responses-server
                                                                         --> embedded llama.cpp

so the Open Responses request recorded is exactly what the shim's translator sends, and the
answer is kept as the bytes the provider relayed. For each case folder holding ``request.json``
and no ``upstream.*`` yet (or every one, with ``--force``) the answer is written to
``upstream.sse`` / ``upstream.json`` (a status >= 400 also writes ``case.toml``).

    .venv/bin/python scripts/record_open_responses_server.py [--force] [--python python3.12]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from shim.cli.embedded import EmbeddedUpstream, cache_dir, free_port
from shim.core.diagnostics import Diagnostics
from shim.translate.responses_request import encode_create_response_body, to_responses_request
from shim.turns.chat_over_responses import ENCRYPTED_INCLUDE
from shim.wire.chat import decode_chat_request
from tests.support.recording_proxy import Exchange, RecordingProxy

PROVIDER = "open-responses-server"
# mcp 2 removed the streamablehttp_client that 0.4.3 imports at start-up.
REQUIREMENTS = ("open-responses-server==0.4.3", "mcp<2")
ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "chat_over_responses" / PROVIDER


def provider_python(python: str) -> Path:
    """The provider venv's interpreter, creating the venv (and installing the pin) when missing."""
    venv = cache_dir() / "recorders" / PROVIDER
    exe = venv / "bin" / "python"
    if not exe.is_file():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    return exe


def _wait(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


@contextmanager
def running(argv: list[str], health: str, what: str, env: dict[str, str], cwd: str) -> Iterator[None]:
    proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=cwd)
    try:
        _wait(health, proc, what)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextmanager
def provider(python: Path, llama_v1: str, workdir: str) -> Iterator[str]:
    """open-responses-server over the llama upstream; yields its origin (it serves ``/responses``)."""
    port = free_port()
    mcp_config = Path(workdir) / "servers_config.json"
    mcp_config.write_text('{"mcpServers": {}}')
    env = {
        # It appends /v1/chat/completions itself.
        "OPENAI_BASE_URL_INTERNAL": llama_v1.removesuffix("/v1"),
        "OPENAI_API_KEY": "record",
        "MCP_SERVERS_CONFIG_PATH": str(mcp_config),
    }
    argv = [str(python), "-m", "uvicorn", "open_responses_server.api_controller:app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    origin = f"http://127.0.0.1:{port}"
    with running(argv, f"{origin}/health", PROVIDER, env, workdir):  # it writes ./log/ in workdir
        yield origin


@contextmanager
def shim(upstream: str) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "shim", "serve", "--upstream", upstream, "--upstream-kind", "responses"]
    argv += ["--port", str(port), "--store", "memory://"]
    base = f"http://127.0.0.1:{port}"
    repo = str(Path(__file__).resolve().parents[1])
    with running(argv, f"{base}/healthz", "shim serve", {"SHIM_SECRET": "record"}, repo):
        yield f"{base}/v1"


def _settle(proxy: RecordingProxy) -> None:
    """Wait for the proxy to file the exchange: it does so after relaying the last byte, which
    the shim may pass on to the client first."""
    for _ in range(100):
        if proxy.exchanges:
            break
        time.sleep(0.05)
    time.sleep(0.2)


def record(shim_v1: str, proxy: RecordingProxy, case: Path) -> None:
    raw_request = (case / "request.json").read_bytes()
    req = decode_chat_request(raw_request)
    expected = to_responses_request(
        req, model=req.model, diags=Diagnostics("ignore"), stream=bool(req.stream)
    )
    headers = {"content-type": "application/json"}
    # Twice: llama-cpp-python is deterministic at temperature 0 once the prompt is cached.
    for _ in range(2):
        proxy.clear()
        with httpx.stream(
            "POST", f"{shim_v1}/chat/completions", content=raw_request, headers=headers, timeout=300
        ) as response:
            client_answer = response.read()
        _settle(proxy)
    exchanges = proxy.exchanges
    if len(exchanges) != 1:
        raise SystemExit(f"{case.name}: expected one upstream call, saw {len(exchanges)}")
    exchange: Exchange = exchanges[0]
    # The server also asks for encrypted reasoning, to remember it for the next turn (chat memory).
    expected.include = [*(expected.include or []), ENCRYPTED_INCLUDE]
    if json.loads(exchange.request) != json.loads(encode_create_response_body(expected)):
        raise SystemExit(f"{case.name}: the shim sent {exchange.request[:300]!r}, not the translation")
    name = "upstream.sse" if exchange.content_type.startswith("text/event-stream") else "upstream.json"
    for old in case.glob("upstream.*"):
        old.unlink()
    (case / name).write_bytes(exchange.answer)
    if exchange.status >= 400:
        (case / "case.toml").write_text(f"upstream_status = {exchange.status}\n")
    print(f"{case.name}: upstream {exchange.status} {name} {len(exchange.answer)} bytes;", end=" ")
    print(f"client got {response.status_code}: {client_answer[:160]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="re-record cases that have bytes already")
    parser.add_argument(
        "--python",
        default=shutil.which("python3.13") or shutil.which("python3.12") or "python3",
        help="interpreter (>= 3.12) that creates the provider's venv",
    )
    args = parser.parse_args()
    cases = [p for p in sorted(ROOT.iterdir()) if (p / "request.json").is_file()]
    todo = [p for p in cases if args.force or not any(p.glob("upstream.*"))]
    if not todo:
        print("nothing to record")
        return 0
    python = provider_python(args.python)
    with (
        tempfile.TemporaryDirectory(prefix="ors-") as workdir,
        EmbeddedUpstream() as llama,
        provider(python, llama.base_url, workdir) as origin,
        RecordingProxy(origin) as proxy,
        shim(proxy.url) as shim_v1,
    ):
        for case in todo:
            record(shim_v1, proxy, case)
    return 0


if __name__ == "__main__":
    sys.exit(main())

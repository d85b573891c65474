"""Codex, a stateless client, through the shim to an upstream that demands its reasoning back.

Codex sends ``store: false`` and ``include: ["reasoning.encrypted_content"]`` and resends the
whole history each turn. The upstream is ``tests/support/deepseek_thinking_synthetic.py``
(hand-made, DeepSeek's thinking-mode rule: an assistant message with ``tool_calls`` must carry
its ``reasoning_content``, else 400). It thinks and calls a side-effect-free tool; Codex runs the
tool and sends the result back with the sealed reasoning item. Codex only finishes the task if
the shim opened that item and replayed the reasoning on the tool-call message.

Real processes over real sockets: the upstream (uvicorn), ``python -m shim serve --dialect
deepseek``, and the Codex CLI from ``tests/clients/node`` (npm ``@openai/codex``). Without node
or that package the test skips with the reason, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shim.embedded import free_port
from tests.support.deepseek_thinking_synthetic import ANSWER, THOUGHT_CALL

ROOT = Path(__file__).resolve().parents[2]
CODEX = ROOT / "tests" / "clients" / "node" / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"
IN_CI = os.environ.get("CI") == "true"


def _codex() -> list[str]:
    node = shutil.which("node")
    if node is None or not CODEX.is_file():
        reason = (
            "node is not installed"
            if node is None
            else f"{CODEX} is missing (bash scripts/install_clients.sh)"
        )
        if IN_CI:
            pytest.fail(f"Codex CLI unavailable: {reason} (CI=true: a missing real component fails)")
        print(f"\nSKIP codex: {reason}", file=sys.stderr)
        pytest.skip(f"Codex CLI unavailable: {reason}")
    return [node, str(CODEX)]


def _spawn(argv: list[str], log: Path, env: dict[str, str], health: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    _stop(proc)
    pytest.fail(f"{argv[:4]} did not come up:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(shim base URL, upstream request log): the synthetic DeepSeek upstream behind ``shim serve``."""
    requests_log = tmp_path / "upstream-requests.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIM_")}
    up_port, shim_port = free_port(), free_port()
    upstream = _spawn(
        [sys.executable, str(ROOT / "tests" / "support" / "deepseek_thinking_synthetic.py"), str(up_port)],
        tmp_path / "upstream.log",
        {**env, "DEEPSEEK_SYNTHETIC_LOG": str(requests_log), "PYTHONPATH": str(ROOT)},
        f"http://127.0.0.1:{up_port}/v1/models",
    )
    shim = None
    try:
        shim = _spawn(
            [
                sys.executable,
                "-m",
                "shim",
                "serve",
                "--upstream",
                f"http://127.0.0.1:{up_port}/v1",
                "--dialect",
                "deepseek",
                "--port",
                str(shim_port),
                "--store",
                "memory://",
            ],
            tmp_path / "shim.log",
            {**env, "SHIM_DATA_DIR": str(tmp_path / "data"), "SHIM_LOG_LEVEL": "warning"},
            f"http://127.0.0.1:{shim_port}/healthz",
        )
        yield f"http://127.0.0.1:{shim_port}/v1", requests_log
    finally:
        if shim is not None:
            _stop(shim)
        _stop(upstream)


def test_codex_round_trip_replays_sealed_reasoning(stack: tuple[str, Path], tmp_path: Path) -> None:
    command = _codex()
    base_url, requests_log = stack
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    provider = f'{{name="shim",base_url="{base_url}",wire_api="responses",stream_max_retries=0,request_max_retries=0}}'
    argv = [
        *command,
        "exec",
        "--skip-git-repo-check",
        "--ephemeral",
        "--json",
        "-c",
        "check_for_update_on_startup=false",
        "-c",
        "analytics.enabled=false",
        "-c",
        "features.plugins=false",
        "-c",
        "model_provider=shim",
        "-c",
        f"model_providers.shim={provider}",
        "-m",
        "deepseek-chat",
        "Check your goal, then answer.",
    ]
    env = {**os.environ, "CODEX_HOME": str(home), "OPENAI_API_KEY": "sk-codex-test"}
    done = subprocess.run(
        argv, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=180, check=False
    )
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, out[-3000:] + done.stderr.decode(errors="replace")[-3000:]
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    messages = [e["item"]["text"] for e in events if e.get("item", {}).get("type") == "agent_message"]
    assert messages == [ANSWER], events

    sent = [json.loads(line) for line in requests_log.read_text().splitlines()]
    assert len(sent) == 2, "one tool turn, then the answer"
    (assistant,) = [m for m in sent[1]["messages"] if m["role"] == "assistant"]
    assert assistant["tool_calls"][0]["function"]["name"] not in {"exec_command", "shell", "apply_patch"}
    assert assistant["reasoning_content"] == "".join(THOUGHT_CALL)

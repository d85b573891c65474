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
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deepseek_thinking_synthetic import ANSWER, THOUGHT_CALL
from tests.support.processes import serve_script, serve_shim
from tests.support.real_components import CLIENTS_HINT, unavailable

ROOT = Path(__file__).resolve().parents[2]
CODEX = ROOT / "tests" / "clients" / "node" / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"


def _codex() -> list[str]:
    node = shutil.which("node")
    if node is None:
        unavailable("Codex CLI", "node is not installed", CLIENTS_HINT)
    if not CODEX.is_file():
        unavailable("Codex CLI", f"{CODEX} is missing", CLIENTS_HINT)
    return [node, str(CODEX)]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(shim base URL, upstream request log): the synthetic DeepSeek upstream behind ``shim serve``."""
    requests_log = tmp_path / "upstream-requests.jsonl"
    upstream = serve_script(
        ROOT / "tests" / "support" / "deepseek_thinking_synthetic.py",
        tmp_path / "upstream.log",
        what="the synthetic DeepSeek upstream",
        env={"DEEPSEEK_SYNTHETIC_LOG": str(requests_log)},
    )
    try:
        shim = serve_shim(
            tmp_path, "--upstream", upstream.base_url, "--dialect", "deepseek", "--store", "memory://"
        )
        yield shim.base_url, requests_log
        shim.stop()
    finally:
        upstream.stop()


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

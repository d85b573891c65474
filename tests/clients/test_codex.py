"""The Codex CLI (npm ``@openai/codex``) against ``shim serve``, offline.

``codex exec --json`` prints its events as JSON lines. Codex sends a ~30-40 KB request: developer
messages instead of ``instructions``, ``store: false``, ``include: [reasoning.encrypted_content]``,
a ``namespace`` and a ``web_search`` tool beside its function tools; it refuses a stream without
``response.completed`` and fails a turn on ``response.incomplete``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import Node, ShimServer
from tests.clients.scripted_shell import COMMAND, EXPECTED_OUTPUT
from tests.support import scripted_chat


def codex_exec(
    node: Node, shim: ShimServer, prompt: str, tmp_path: Path, *, websocket: bool = False
) -> tuple[int, list[dict[str, Any]]]:
    """One ``codex exec`` turn; returns its exit code and its JSON events. With ``websocket``
    the provider says ``supports_websockets`` and Codex sends its turns over the WebSocket on
    ``/v1/responses`` (it does not fall back to HTTP: a refused frame fails the turn)."""
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    provider = (
        f'{{name="shim",base_url="{shim.base_url}",wire_api="responses",'
        f"supports_websockets={'true' if websocket else 'false'},"
        "stream_max_retries=0,request_max_retries=0}"
    )
    argv = [
        str(node.bin("codex")),
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--ephemeral",
        "--sandbox",
        "read-only",
        *("-c", "check_for_update_on_startup=false"),
        *("-c", "analytics.enabled=false"),
        *("-c", "features.plugins=false"),
        *("-c", "model_provider=shim"),
        *("-c", f"model_providers.shim={provider}"),
        *("-m", shim.model),
        prompt,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env["CODEX_HOME"] = str(home)
    proc = subprocess.run(
        argv, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=300, check=False
    )
    events = []
    for line in proc.stdout.decode().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    assert events, f"codex printed no events (exit {proc.returncode}):\n{proc.stderr.decode()[-4000:]}"
    return proc.returncode, events


def items(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind]


@pytest.mark.parametrize("websocket", [False, True], ids=["http-sse", "websocket"])
def test_shell_tool_round_trip_over_scripted(
    node: Node, shim_scripted: ShimServer, tmp_path: Path, websocket: bool
) -> None:
    """The scripted upstream calls Codex's shell tool with a fixed command (``scripted_shell``;
    the shim is under test, not the model). Codex runs it, sends the output back as
    ``function_call_output``, and the scripted answer echoes the output it read upstream."""
    prompt = "Print the magic number with a shell command."
    code, events = codex_exec(node, shim_scripted, prompt, tmp_path, websocket=websocket)
    assert code == 0, events
    (command,) = items(events, "command_execution")
    assert COMMAND in command["command"]
    assert command["exit_code"] == 0 and command["status"] == "completed"
    assert EXPECTED_OUTPUT in command["aggregated_output"]
    (answer,) = items(events, "agent_message")
    assert answer["text"].startswith(f"{scripted_chat.ANSWER} You said: ")
    assert EXPECTED_OUTPUT in answer["text"]  # the command's output made the round trip
    assert events[-1]["type"] == "turn.completed"
    assert not [e for e in events if e["type"] in ("error", "turn.failed")]


def test_text_turn_over_llama(node: Node, shim_llama: ShimServer, tmp_path: Path) -> None:
    """Codex's real request through the shim into llama (developer messages, namespace and
    web_search tools, encrypted-reasoning include: all accepted) and the answer streamed back.

    Codex sends no output limit and the route caps it (``max_output_tokens``); the 270M base
    model never ends a turn by itself, so the shim truthfully reports ``incomplete`` and Codex,
    which takes only ``completed`` as a finished turn, fails the turn with that reason after
    showing the text. An instruct model ends its turn and Codex completes it."""
    code, events = codex_exec(node, shim_llama, "Say hi.", tmp_path)
    (answer,) = items(events, "agent_message")
    assert answer["text"].strip()
    kinds = [e["type"] for e in events]
    if kinds[-1] == "turn.completed":  # the sampled text happened to end the turn
        assert code == 0
        return
    assert kinds[-1] == "turn.failed", events
    assert events[-1]["error"]["message"] == "Incomplete response returned, reason: max_output_tokens"
    assert kinds.count("error") == 1, "Codex retried or saw a broken stream"


@pytest.fixture(autouse=True)
def _no_network_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Codex must reach the shim on loopback directly.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

"""The Codex CLI (npm ``@openai/codex``) against ``shim serve``, offline.

``codex exec --json`` prints its events as JSON lines. Codex sends a ~30-40 KB request: developer
messages instead of ``instructions``, ``store: false``, ``include: [reasoning.encrypted_content]``,
a ``namespace`` and a ``web_search`` tool beside its function tools; it refuses a stream without
``response.completed`` and fails a turn on ``response.incomplete``.

Over the real model Codex runs twice: with llama's ``gemma`` format (a text turn; the model
never calls a tool there, as Codex cannot force one) and with ``chatml-function-calling``, where
the model chooses Codex's ``exec_command`` on its own and Codex runs it (docs/upstreams.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import LlamaFunctions, Node, RecordedShim, ShimServer
from tests.clients.mcp_demo_server import magic
from tests.clients.scripted_shell import COMMAND, EXPECTED_OUTPUT, SUBAGENT_ASK, SUBAGENT_TASK, WAIT
from tests.support import scripted_chat


def codex_exec(
    node: Node,
    shim: ShimServer,
    prompt: str,
    tmp_path: Path,
    *,
    websocket: bool = False,
    timeout: float = 300,
    work: Path | None = None,
    home: Path | None = None,
    config: tuple[str, ...] = (),
) -> tuple[int, list[dict[str, Any]]]:
    """One ``codex exec`` turn; returns its exit code and its JSON events. With ``websocket``
    the provider says ``supports_websockets`` and Codex sends its turns over the WebSocket on
    ``/v1/responses`` (it does not fall back to HTTP: a refused frame fails the turn).
    ``work`` and ``home`` are Codex's working directory and ``CODEX_HOME`` (default: fresh
    ones in ``tmp_path``); ``config`` adds ``-c`` settings."""
    home, work = home or tmp_path / "codex-home", work or tmp_path / "work"
    home.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
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
        *(arg for setting in config for arg in ("-c", setting)),
        *("-m", shim.model),
        prompt,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env["CODEX_HOME"] = str(home)
    proc = subprocess.run(
        argv, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
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


# A 270M model's choices hang on near-ties in its logits, so the prompt must be the same on
# every run: no environment context (it holds the date and the working directory), and fixed
# CODEX_HOME (its path is in the skills instructions) and working directories.
LLAMA_DIRS = Path(tempfile.gettempdir()) / "shim-codex-over-llama"


def test_shell_tool_round_trip_over_llama(
    node: Node, shim_llama_functions: LlamaFunctions, tmp_path: Path
) -> None:
    """Codex over the real model: the model chooses Codex's ``exec_command`` tool on its own
    and writes the command (a 270M base model, so only the prompt steers it), Codex runs it
    and sends the output back, the shim passes that upstream as the call's ``tool`` message,
    and the turn completes with the model's text answer.

    Two upstream requests: the first offers Codex's tools with ``tool_choice: "auto"``,
    unstreamed (this format cannot stream that choice; the shim replays the answer as SSE
    events); the second carries the call and its output, with ``tool_choice: "none"`` from
    the route's loop guard and the route's stop sequence."""
    shim, proxy = shim_llama_functions.shim, shim_llama_functions.proxy
    proxy.clear()
    shutil.rmtree(LLAMA_DIRS, ignore_errors=True)
    prompt = "Use functions.exec_command to run: ls -la"
    code, events = codex_exec(
        node,
        shim,
        prompt,
        tmp_path,
        timeout=900,
        work=LLAMA_DIRS / "work",
        home=LLAMA_DIRS / "home",
        config=("include_environment_context=false",),
    )
    assert code == 0 and events[-1]["type"] == "turn.completed", events
    assert not [e for e in events if e["type"] in ("error", "turn.failed")]
    commands = items(events, "command_execution")
    assert len(commands) == 1, (events, proxy.bodies[-1:])  # Codex ran the model's call once
    (command,) = commands
    assert command["status"] == "completed" and command["exit_code"] == 0, command

    first, second = proxy.bodies
    assert first["tool_choice"] == "auto" and not first.get("stream"), "auto tool choice goes unstreamed"
    assert first["temperature"] == 0 and "stop" not in first  # a stop could cut the arguments
    assert any(t["function"]["name"] == "exec_command" for t in first["tools"])
    (call,) = second["messages"][-2]["tool_calls"]
    assert call["function"]["name"] == "exec_command"
    assert json.loads(call["function"]["arguments"])["cmd"] in command["command"]
    result = second["messages"][-1]
    assert result["role"] == "tool" and result["tool_call_id"] == call["id"]
    assert command["aggregated_output"].strip() in result["content"]  # Codex's output went back
    assert second["tool_choice"] == "none" and second["stream"] is True and second["stop"] == ["\n"]


@pytest.fixture(autouse=True)
def _no_network_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Codex must reach the shim on loopback directly.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


MCP_SERVER = Path(__file__).with_name("mcp_demo_server.py")


def _mcp_home(home: Path) -> Path:
    """A ``CODEX_HOME`` whose ``config.toml`` starts the demo MCP server (stdio). ``required``
    makes Codex wait for the server before its first request: without it Codex 0.169 sends the
    turn at once and a Python server still importing (seconds on a busy machine) is left out.
    ``codex exec`` never asks for approval, so the server's tools are approved up front."""
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        "[mcp_servers.demo]\n"
        f"command = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(str(MCP_SERVER))}]\n"
        "required = true\n"
        'default_tools_approval_mode = "approve"\n'
        "startup_timeout_sec = 120\n"
    )
    return home


@pytest.mark.parametrize("websocket", [False, True], ids=["http-sse", "websocket"])
def test_mcp_tool_round_trip_over_scripted(
    node: Node, shim_scripted_recorded: RecordedShim, tmp_path: Path, websocket: bool
) -> None:
    """Codex with an MCP server in its config sends that server's tools as the ``namespace``
    ``mcp__demo``. The shim offers its member upstream as ``mcp__demo__magic_word``; the scripted
    model calls it (``scripted_shell`` calls a lowered MCP tool first), the call comes back as a
    ``function_call`` with ``namespace: "mcp__demo"``, Codex runs the MCP tool and sends its
    output back, and the answer quotes the tool's result (computed by the server, so seeing it
    proves the server ran)."""
    home = _mcp_home(tmp_path / "codex-home-mcp")
    shim_scripted_recorded.proxy.clear()
    code, events = codex_exec(
        node,
        shim_scripted_recorded.shim,
        "Find the magic word for San Francisco.",
        tmp_path,
        home=home,
        websocket=websocket,
    )
    assert code == 0, events
    (call,) = items(events, "mcp_tool_call")
    assert (call["server"], call["tool"], call["status"]) == ("demo", "magic_word", "completed"), json.dumps(
        call
    )
    result = magic("San Francisco")
    assert result in json.dumps(call["result"])
    (answer,) = items(events, "agent_message")
    assert answer["text"].startswith(f"{scripted_chat.ANSWER} You said: ")
    assert result in answer["text"]  # the MCP tool's result made the round trip
    assert events[-1]["type"] == "turn.completed"
    offered = {t["function"]["name"] for t in shim_scripted_recorded.proxy.bodies[0]["tools"]}
    assert "mcp__demo__magic_word" in offered


def test_subagent_round_trip_over_scripted(
    node: Node, shim_scripted_recorded: RecordedShim, tmp_path: Path
) -> None:
    """Codex's sub-agent tools (the ``namespace`` ``multi_agent_v1``) through the shim: offered
    upstream as ``multi_agent_v1__<member>``, the scripted model calls ``spawn_agent``, the
    call comes back namespaced and Codex spawns the sub-agent, whose own turns go through the
    shim too (it runs the shell command); the parent calls ``wait_agent`` on it and the wait's
    output, the sub-agent's result, goes back upstream as that call's tool message. (Codex also
    tells the parent in a user message that the sub-agent finished, before or after the wait's
    output: the scripted model's text after that varies, so it is not asserted.)"""
    proxy = shim_scripted_recorded.proxy
    proxy.clear()
    code, events = codex_exec(node, shim_scripted_recorded.shim, f"{SUBAGENT_ASK}.", tmp_path)
    assert code == 0 and events[-1]["type"] == "turn.completed", events
    first = proxy.bodies[0]
    offered = {t["function"]["name"] for t in first["tools"]}
    members = ("spawn_agent", "send_input", "resume_agent", "wait_agent", "close_agent")
    assert {f"multi_agent_v1__{m}" for m in members} <= offered
    (spawn,) = [i for i in items(events, "collab_tool_call") if i["tool"] == "spawn_agent"]
    assert spawn["status"] == "completed" and spawn["prompt"] == SUBAGENT_TASK, spawn
    (child,) = spawn["receiver_thread_ids"]
    # The sub-agent's own first turn reached the upstream through the shim with its task.
    assert any(scripted_chat._last_text(b["messages"]) == SUBAGENT_TASK for b in proxy.bodies[1:])
    # The spawn call went back upstream as the parent's tool call and its output.
    spawned = next(b["messages"] for b in proxy.bodies if "spawn_agent" in json.dumps(b["messages"][-2:]))
    (sent,) = spawned[-2]["tool_calls"]
    assert sent["function"]["name"] == "multi_agent_v1__spawn_agent"
    assert spawned[-1]["tool_call_id"] == sent["id"] and child in spawned[-1]["content"]
    # The parent waited on the sub-agent, which had run the command and answered.
    (wait,) = [i for i in items(events, "collab_tool_call") if i["tool"] == "wait"]
    assert wait["receiver_thread_ids"] == [child] and wait["status"] == "completed", wait
    assert EXPECTED_OUTPUT in wait["agents_states"][child]["message"]
    # (Codex's notification that the sub-agent finished may come before or after the wait's output.)
    messages = next(b["messages"] for b in proxy.bodies if WAIT in json.dumps(b["messages"]))
    (sent,) = [c for m in messages for c in m.get("tool_calls") or () if c["function"]["name"] == WAIT]
    assert json.loads(sent["function"]["arguments"]) == {"targets": [child]}
    (output,) = [m for m in messages if m.get("tool_call_id") == sent["id"]]
    assert EXPECTED_OUTPUT in output["content"]


LLAMA_MCP_DIRS = Path(tempfile.gettempdir()) / "shim-codex-mcp-over-llama"


def test_mcp_tool_round_trip_over_llama(
    node: Node, shim_llama_functions: LlamaFunctions, tmp_path: Path
) -> None:
    """Codex with the demo MCP server over the real model in the function-calling format: the
    model chooses the lowered ``mcp__demo__magic_word`` itself (only the prompt steers it), the
    shim raises the call to a namespaced ``function_call``, Codex runs the MCP tool and sends
    its output back, which reaches llama as the call's ``tool`` message; the turn completes.

    The prompt matters to a 270M base model: with "Use functions.mcp__demo__magic_word for:
    shim" it chose a message (empty); "Call ... with word: shim" makes it call the tool with
    ``{"word": "shim"}``. llama names that call with a 72-character id, which the shim fits to
    the spec's 64 (fixture ``namespace_call_long_id``): before that, Codex's answer got a 400."""
    shim, proxy = shim_llama_functions.shim, shim_llama_functions.proxy
    proxy.clear()
    shutil.rmtree(LLAMA_MCP_DIRS, ignore_errors=True)
    home = _mcp_home(LLAMA_MCP_DIRS / "home")
    code, events = codex_exec(
        node,
        shim,
        "Call functions.mcp__demo__magic_word with word: shim",
        tmp_path,
        timeout=900,
        work=LLAMA_MCP_DIRS / "work",
        home=home,
        config=("include_environment_context=false",),
    )
    first = proxy.bodies[0]
    assert any(t["function"]["name"] == "mcp__demo__magic_word" for t in first["tools"])
    answers = [x.answer.decode(errors="replace")[-2000:] for x in proxy.exchanges]
    assert code == 0 and events[-1]["type"] == "turn.completed", (events, answers)
    calls = items(events, "mcp_tool_call")
    assert len(calls) == 1, (events, answers)  # the model chose the MCP tool, Codex ran it once
    (call,) = calls
    assert (call["server"], call["tool"], call["status"]) == ("demo", "magic_word", "completed"), call
    result = magic(call["arguments"]["word"])
    second = proxy.bodies[1]
    (sent,) = second["messages"][-2]["tool_calls"]
    assert sent["function"]["name"] == "mcp__demo__magic_word"
    tool = second["messages"][-1]
    assert tool["role"] == "tool" and tool["tool_call_id"] == sent["id"]
    assert result in json.dumps(tool["content"])  # the MCP tool's output reached the model

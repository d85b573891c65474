"""The scripted Chat upstream (``tests/support/scripted_chat.py``), taught which shell command to run.

The scripted model fills a tool's string arguments with sample text, so a coding agent's shell
tool would get ``"San Francisco"`` as its command. This wrapper pins the command: every function
tool with a string ``cmd`` or ``command`` property gets ``enum: [COMMAND]`` in the request it
reads, and the scripted model picks an enum's first value; so does each item of a ``commands``
array (the lowered ``shell`` tool). The lowered ``apply_patch`` (``type``, ``path``, ``diff``)
is pinned to create ``PATCH_PATH``, and a lowered MCP tool (a function named ``mcp__…``) is
called before any other; after Codex's ``spawn_agent`` when the prompt asks for a sub-agent. Everything else is the scripted model unchanged: it calls the first
offered tool, then answers in text ending with "You said: <the last text it read>" (the tool's
output after a round trip).

``python tests/clients/scripted_shell.py PORT`` serves it on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import scripted_chat
from tests.support.scripted_asgi import read_body, run

# The output holds 42, the command does not: seeing 42 proves a shell ran it.
COMMAND = "echo shim-codex-$((6*7))"
EXPECTED_OUTPUT = "shim-codex-42"
SHELL_ARGS = ("cmd", "command")
PATCH_PATH = "notes.md"
PATCH_DIFF = "+shim was here\n"
PATCH_ARGS = {"type": "create_file", "path": PATCH_PATH, "diff": PATCH_DIFF}
# Codex's sub-agent tool, lowered from its ``multi_agent_v1`` namespace. A prompt holding
# SUBAGENT_ASK makes the model spawn a sub-agent with SUBAGENT_TASK (which does not hold it,
# so the sub-agent runs the shell command instead of spawning again).
SPAWN = "multi_agent_v1__spawn_agent"
WAIT = "multi_agent_v1__wait_agent"
SUBAGENT_ASK = "Ask a sub-agent"
SUBAGENT_TASK = "Print the magic number with a shell command."


def pin_command(request: dict[str, Any]) -> dict[str, Any]:
    tools = request.get("tools") or []
    for tool in tools:
        params = (tool.get("function") or {}).get("parameters") or {}
        props = params.get("properties", {})
        for name in SHELL_ARGS:
            if props.get(name, {}).get("type") == "string":
                props[name] = {**props[name], "enum": [COMMAND]}
        if props.get("commands", {}).get("type") == "array":
            props["commands"] = {**props["commands"], "items": {"type": "string", "enum": [COMMAND]}}
        if set(PATCH_ARGS) <= set(props):
            for name, value in PATCH_ARGS.items():
                props[name] = {**props[name], "enum": [value]}
            params["required"] = list(PATCH_ARGS)
        if (tool.get("function") or {}).get("name") == SPAWN:  # a sub-agent gets only a task
            params["properties"] = {"message": {"type": "string", "enum": [SUBAGENT_TASK]}}
            params["required"] = ["message"]
    messages = request.get("messages", [])
    first = SPAWN if SUBAGENT_ASK in scripted_chat._last_text(messages) else None
    spawned = _spawned(messages)
    if spawned is not None:
        for tool in tools:
            if (tool.get("function") or {}).get("name") == WAIT:
                tool["function"]["parameters"] = {
                    "type": "object",
                    "properties": {
                        "targets": {"type": "array", "items": {"type": "string", "enum": [spawned]}}
                    },
                    "required": ["targets"],
                }
                request["messages"] = messages[:-1]  # not answered yet: the model calls again
                first = WAIT
    tools.sort(key=lambda t: _rank((t.get("function") or {}).get("name", ""), first))
    return request


def _spawned(messages: list[dict[str, Any]]) -> str | None:
    """The agent id in the last message when it is the output of ``spawn_agent``: the model
    then waits for that agent (``wait_agent``) before it answers."""
    if len(messages) < 2 or messages[-1].get("role") != "tool":
        return None
    calls = {call.get("id"): call for call in messages[-2].get("tool_calls") or ()}
    call = calls.get(messages[-1].get("tool_call_id"))
    if call is None or call["function"]["name"] != SPAWN:
        return None
    try:
        agent = json.loads(messages[-1].get("content") or "").get("agent_id")
    except (ValueError, AttributeError):
        return None
    return agent if isinstance(agent, str) else None


def _rank(name: str, first: str | None) -> int:
    if name == first:
        return 0
    return 1 if name.startswith("mcp__") else 2


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http" or scope["method"] != "POST":
        await scripted_chat.app(scope, receive, send)
        return
    body = await read_body(receive)
    if body:
        body = json.dumps(pin_command(json.loads(body))).encode()
    replayed = False

    async def replay() -> dict[str, Any]:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    await scripted_chat.app(scope, replay, send)


if __name__ == "__main__":
    run(app)

"""A synthetic DeepSeek thinking-mode upstream that demands its reasoning back (hand-made, not recorded).

It behaves like DeepSeek's thinking mode with tools, in DeepSeek's chunk shape: it thinks
(``reasoning_content``) and calls a tool; after a tool result it thinks and answers in text. Like
DeepSeek (https://api-docs.deepseek.com/guides/thinking_mode), it answers 400 when an assistant
message that carries ``tool_calls`` comes back without its ``reasoning_content``, so a stateless
client only gets past the tool turn if the shim replayed the reasoning it sealed.

The tool called is ``update_plan`` or ``get_goal`` when offered (Codex tools with no side
effects), else the first function tool that runs nothing (never ``exec_command``, ``shell``,
``apply_patch``…), with arguments made from its schema; with none, it answers at once. Pure ASGI:
in-process through ``httpx.ASGITransport``, or ``python tests/support/deepseek_thinking_synthetic.py
PORT`` for out-of-process clients. Every chat request body is kept in ``REQUESTS``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.scripted_asgi import read_body, run, sample, send_chat_stream, send_json

__all__ = ["ANSWER", "DEEPSEEK_400", "REQUESTS", "THOUGHT_ANSWER", "THOUGHT_CALL", "app"]

THOUGHT_CALL = ["I should make a plan", " before answering; call the tool."]
THOUGHT_ANSWER = ["The tool ran.", " Now answer briefly."]
ANSWER = "Done: the plan is recorded."
CALL_ID = "call_00_Xk2vR8"
DEEPSEEK_400 = {
    "error": {
        "message": "The reasoning_content in the thinking mode must be passed back to the API.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }
}
REQUESTS: list[dict[str, Any]] = []
LOG = os.environ.get("DEEPSEEK_SYNTHETIC_LOG")
# Codex offers these; calling them reads or records state only (nothing runs on the machine).
PREFERRED = ("update_plan", "get_goal")
# Never called: a client would run a command or write a file.
UNSAFE = frozenset({"exec_command", "shell", "local_shell", "write_stdin", "apply_patch"})


def _tool_call(request: dict[str, Any]) -> dict[str, str] | None:
    """The call to make: a preferred side-effect-free tool, else the first harmless one, else none."""
    tools = [t["function"] for t in request.get("tools") or [] if t.get("type") == "function"]
    harmless = [t for t in tools if t["name"] not in UNSAFE]
    chosen = next((t for name in PREFERRED for t in harmless if t["name"] == name), None)
    chosen = chosen or (harmless[0] if harmless else None)
    if chosen is None:
        return None
    if chosen["name"] == "update_plan":
        args: Any = {"plan": [{"step": "Answer the user", "status": "completed"}]}
    else:
        args = sample(chosen.get("parameters") or {"type": "object"}, "Paris")
    return {"name": chosen["name"], "arguments": json.dumps(args)}


def _missing_reasoning(messages: list[dict[str, Any]]) -> bool:
    return any(
        m["role"] == "assistant" and m.get("tool_calls") and not m.get("reasoning_content") for m in messages
    )


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    if scope["path"].endswith("/models"):
        await send_json(send, 200, {"object": "list", "data": [{"id": "deepseek-chat", "object": "model"}]})
        return
    request = json.loads(body)
    REQUESTS.append(request)
    if LOG:  # out-of-process runs: the test reads what the upstream received from this file
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(request) + "\n")
    messages = request["messages"]
    if _missing_reasoning(messages):
        await send_json(send, 400, DEEPSEEK_400)
        return
    call = _tool_call(request)
    answered = messages[-1]["role"] == "tool" or call is None
    thoughts = THOUGHT_ANSWER if answered else THOUGHT_CALL
    base = {"id": "3b9d0e51-7a2c", "created": 1747000000, "model": request["model"]}
    usage = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
    finish = "stop" if answered else "tool_calls"
    if not request.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "reasoning_content": "".join(thoughts)}
        if answered:
            message["content"] = ANSWER
        else:
            message["content"] = ""
            assert call is not None
            message["tool_calls"] = [{"id": CALL_ID, "type": "function", "function": call}]
        choice = {"index": 0, "message": message, "finish_reason": finish}
        await send_json(send, 200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        return
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None, "reasoning_content": ""}]
    deltas += [{"reasoning_content": t} for t in thoughts]
    if answered:
        deltas.append({"content": ANSWER})
    else:
        assert call is not None
        start = {
            "index": 0,
            "id": CALL_ID,
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        deltas.append({"tool_calls": [start]})
        deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": call["arguments"]}}]})
    choices = [{"index": 0, "delta": d, "finish_reason": None} for d in deltas]
    choices.append({"index": 0, "delta": {}, "finish_reason": finish})
    chunks = [{**base, "object": "chat.completion.chunk", "choices": [c]} for c in choices]
    chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    await send_chat_stream(send, chunks)


if __name__ == "__main__":
    run(app)

"""A scripted Chat Completions upstream that answers like a capable model.

It calls an offered tool when tools are present (the forced one, or the first), with arguments
made from the tool's JSON schema; after a tool result, or without tools, it answers in text.
``max_tokens`` cuts the answer (``finish_reason: length``). Pure ASGI: tests drive it
in-process through ``httpx.ASGITransport``; ``python tests/support/scripted_chat.py PORT`` serves
it for out-of-process clients (the compliance suite).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.scripted_asgi import lifespan, read_body, run, sample, send_chat_stream, send_json

ANSWER = "The scripted upstream says hello and answers your question in a few words."


def _last_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        content = message.get("content")
        if isinstance(content, str) and content:
            return content
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if texts:
                return " ".join(texts)
    return ""


def _fresh_call_id(messages: list[dict[str, Any]]) -> str:
    """``call_scripted_1``, or the next number a call in the history has not taken."""
    taken = {call.get("id") for m in messages for call in m.get("tool_calls") or ()}
    n = 1
    while f"call_scripted_{n}" in taken:
        n += 1
    return f"call_scripted_{n}"


def plan(request: dict[str, Any]) -> dict[str, Any]:
    """What the scripted model says: ``{"text": [...words], "finish": ..., "call": {...}}``."""
    messages = request.get("messages", [])
    tools = [t for t in request.get("tools") or [] if t.get("type") == "function"]
    choice = request.get("tool_choice", "auto")
    answered = bool(messages) and messages[-1].get("role") == "tool"
    if tools and choice != "none" and not answered:
        tool = tools[0]
        if isinstance(choice, dict) and choice.get("type") == "function":
            tool = next((t for t in tools if t["function"]["name"] == choice["function"]["name"]), tool)
        fn = tool["function"]
        args = json.dumps(sample(fn.get("parameters") or {"type": "object"}))
        return {
            "call": {"id": _fresh_call_id(messages), "name": fn["name"], "arguments": args},
            "finish": "tool_calls",
        }
    words = (ANSWER + (" You said: " + _last_text(messages)[:200] if messages else "")).split(" ")
    limit = request.get("max_tokens") or request.get("max_completion_tokens")
    finish = "stop"
    if limit is not None and limit < len(words):
        words, finish = words[:limit], "length"
    return {"text": [w + " " for w in words[:-1]] + words[-1:], "finish": finish}


def _usage(n: int) -> dict[str, int]:
    return {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}


def completion(request: dict[str, Any]) -> dict[str, Any]:
    p = plan(request)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(p.get("text", [])) or None}
    if "call" in p:
        call = p["call"]
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
        ]
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 1700000000,
        "model": request.get("model", "scripted"),
        "choices": [{"index": 0, "message": message, "finish_reason": p["finish"], "logprobs": None}],
        "usage": _usage(len(p.get("text", [])) or 8),
    }


def chunks(request: dict[str, Any]) -> list[dict[str, Any]]:
    p = plan(request)
    base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1700000000}
    base["model"] = request.get("model", "scripted")
    out = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    ]
    for word in p.get("text", []):
        out.append({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
    if "call" in p:
        call = p["call"]
        head = {
            "index": 0,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        out.append(
            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}]}
        )
        args = call["arguments"]
        for i in range(0, len(args), 8):
            piece = {"index": 0, "function": {"arguments": args[i : i + 8]}}
            out.append(
                {**base, "choices": [{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}]}
            )
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": p["finish"]}]})
    if (request.get("stream_options") or {}).get("include_usage"):
        out.append({**base, "choices": [], "usage": _usage(len(p.get("text", [])) or 8)})
    return out


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    body = await read_body(receive)
    path = scope["path"]
    if scope["method"] == "GET" and path.endswith("/models"):
        await send_json(
            send, 200, {"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "test"}]}
        )
        return
    if not path.endswith("/chat/completions"):
        await send_json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        return
    request = json.loads(body)
    if not request.get("stream"):
        await send_json(send, 200, completion(request))
        return
    await send_chat_stream(send, chunks(request))


if __name__ == "__main__":
    run(app)

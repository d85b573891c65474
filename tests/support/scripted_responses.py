"""A scripted Open Responses upstream (JSON and SSE), for the Chat-over-Responses direction.

It answers like ``scripted_chat``: a function call when tools are offered and no tool result is
in the input yet, otherwise text that quotes the last user text. Options:

- ``reasoning``: thoughts streamed as ``response.reasoning_text.delta`` before the answer, and a
  reasoning item with ``encrypted_content`` (``enc:<turn>``), as OpenAI's reasoning models do;
- ``stateful``: keeps every answer and expands ``previous_response_id`` itself (like OpenAI);
- ``reject_previous_id``: answers 400 to any ``previous_response_id`` (like Ollama).

``requests`` holds every JSON body it received. Pure ASGI; ``python
tests/support/scripted_responses.py PORT`` serves it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.scripted_asgi import lifespan, read_body, run, sample, send_json, send_stream
from tests.support.scripted_chat import ANSWER

__all__ = ["ScriptedResponses"]


def _text_of(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class ScriptedResponses:
    def __init__(
        self,
        *,
        reasoning: list[str] | None = None,
        stateful: bool = False,
        reject_previous_id: bool = False,
        usage: bool = True,
    ) -> None:
        self.reasoning = reasoning
        self.usage = usage  # False: answers carry `usage: null`, as llama.cpp-backed upstreams do
        self.stateful = stateful
        self.reject_previous_id = reject_previous_id
        self.requests: list[dict[str, Any]] = []
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.turn = 0

    # ------------------------------------------------------------------ the model

    def _input(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        items = request.get("input") or []
        if isinstance(items, str):
            items = [{"type": "message", "role": "user", "content": items}]
        previous = request.get("previous_response_id")
        return [*self.history.get(previous, []), *items] if previous else list(items)

    def resource(self, request: dict[str, Any]) -> dict[str, Any]:
        """The whole answer as a ``ResponseResource``."""
        self.turn += 1
        rid = f"resp_scripted_{self.turn}"
        items = self._input(request)
        output: list[dict[str, Any]] = []
        if self.reasoning:
            output.append(
                {
                    "type": "reasoning",
                    "id": f"rs_{self.turn}",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "".join(self.reasoning)}],
                    "encrypted_content": f"enc:{self.turn}",
                }
            )
        tools = [t for t in request.get("tools") or [] if t.get("type") == "function"]
        answered = bool(items) and items[-1].get("type") == "function_call_output"
        status, incomplete = "completed", None
        if tools and request.get("tool_choice") != "none" and not answered:
            tool = tools[0]
            args = json.dumps(sample(tool.get("parameters") or {"type": "object"}))
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_{self.turn}",
                    "call_id": f"call_{self.turn}",
                    "name": tool["name"],
                    "arguments": args,
                    "status": "completed",
                }
            )
        else:
            users = [i for i in items if i.get("role") == "user"]
            said = _text_of(users[-1])[:200] if users else ""
            words = (ANSWER + f" You said: {said}").split(" ")
            limit = request.get("max_output_tokens")
            if limit is not None and limit < len(words):
                words, status, incomplete = words[:limit], "incomplete", {"reason": "max_output_tokens"}
            text = " ".join(words)
            output.append(
                {
                    "type": "message",
                    "id": f"msg_{self.turn}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
                }
            )
        if self.stateful:
            self.history[rid] = [*items, *output]
        return {
            "id": rid,
            "object": "response",
            "created_at": 1700000000,
            "completed_at": 1700000001,
            "status": status,
            "incomplete_details": incomplete,
            "model": request.get("model", "scripted"),
            "output": output,
            "usage": None
            if not self.usage
            else {
                "input_tokens": 10 * len(items),
                "output_tokens": 20,
                "total_tokens": 10 * len(items) + 20,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 5 if self.reasoning else 0},
            },
        }

    def events(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """The same answer as a stream of events, deltas word by word."""
        final = self.resource(request)
        head = {**final, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
        out: list[dict[str, Any]] = [
            {"type": "response.created", "response": head},
            {"type": "response.in_progress", "response": head},
        ]
        for n, item in enumerate(final["output"]):
            base = {"output_index": n, "item_id": item["id"]}
            if item["type"] == "reasoning":
                out.append(
                    {"type": "response.output_item.added", "output_index": n, "item": {**item, "content": []}}
                )
                for piece in self.reasoning or []:
                    out.append(
                        {"type": "response.reasoning_text.delta", **base, "content_index": 0, "delta": piece}
                    )
            elif item["type"] == "message":
                text = item["content"][0]["text"]
                out.append(
                    {"type": "response.output_item.added", "output_index": n, "item": {**item, "content": []}}
                )
                words = text.split(" ")
                for i, word in enumerate(words):
                    piece = word + (" " if i < len(words) - 1 else "")
                    out.append(
                        {"type": "response.output_text.delta", **base, "content_index": 0, "delta": piece}
                    )
                out.append({"type": "response.output_text.done", **base, "content_index": 0, "text": text})
            else:
                out.append(
                    {
                        "type": "response.output_item.added",
                        "output_index": n,
                        "item": {**item, "arguments": ""},
                    }
                )
                args = item["arguments"]
                for i in range(0, len(args), 8):
                    out.append(
                        {"type": "response.function_call_arguments.delta", **base, "delta": args[i : i + 8]}
                    )
            out.append({"type": "response.output_item.done", "output_index": n, "item": item})
        terminal = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out.append({"type": terminal, "response": final})
        for seq, event in enumerate(out):
            event["sequence_number"] = seq
        return out

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        if not scope["path"].endswith("/responses") or scope["method"] != "POST":
            await send_json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        request = json.loads(body)
        self.requests.append(request)
        previous = request.get("previous_response_id")
        if previous and (self.reject_previous_id or previous not in self.history):
            error = {"message": "previous_response_id is not supported", "type": "invalid_request_error"}
            await send_json(send, 400, {"error": {**error, "param": "previous_response_id", "code": None}})
            return
        if not request.get("stream"):
            await send_json(send, 200, self.resource(request))
            return
        frames = (f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in self.events(request))
        await send_stream(send, frames)


if __name__ == "__main__":
    run(ScriptedResponses())

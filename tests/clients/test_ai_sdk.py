"""The Vercel AI SDK (npm ``ai@6`` + ``@ai-sdk/openai@3``) against ``shim serve``.

``openai(model)`` speaks Responses and validates every field it reads with zod, so a wrong type
in any event fails the run. ``node/ai_sdk.mjs`` runs one scenario and prints what the SDK
returned plus the request bodies it sent (a recording ``fetch``).
"""

from __future__ import annotations

from typing import Any

from tests.clients.conftest import Node, ShimServer
from tests.support import scripted_chat


def run(node: Node, shim: ShimServer, mode: str) -> Any:
    return node.run("ai_sdk.mjs", mode, env={"SHIM_BASE_URL": shim.base_url, "SHIM_MODEL": shim.model})


def test_generate_text_over_llama(node: Node, shim_llama: ShimServer) -> None:
    result = run(node, shim_llama, "text")
    assert result["text"].strip()
    assert result["finishReason"] == "length"  # the base model is cut at maxOutputTokens (16)
    assert result["usage"]["outputTokens"] == 16 and result["usage"]["inputTokens"] > 0
    assert result["responseId"].startswith("resp_")
    assert result["warnings"] == []
    (request,) = result["requests"]
    assert request["url"] == f"{shim_llama.base_url}/responses"
    assert request["body"]["input"][0] == {"role": "system", "content": "Answer briefly."}


def test_stream_text_over_llama(node: Node, shim_llama: ShimServer) -> None:
    result = run(node, shim_llama, "stream")
    parts = result["parts"]
    assert parts[:3] == ["start", "start-step", "text-start"]
    assert parts[-3:] == ["text-end", "finish-step", "finish"]
    assert set(parts[3:-3]) == {"text-delta"} and len(result["deltas"]) > 1
    assert "".join(result["deltas"]) == result["text"] and result["text"].strip()
    assert result["finishReason"] == "length"
    assert result["requests"][0]["body"]["stream"] is True


def test_forced_tool_step_over_llama(node: Node, shim_llama: ShimServer) -> None:
    """The real model, forced to call the tool: the SDK runs it and sends the result back as
    ``function_call_output``; the next step (``toolChoice: none``) answers in text."""
    result = run(node, shim_llama, "forced-tool")
    first, second = result["steps"]
    assert first["finishReason"] == "tool-calls"
    (call,) = first["toolCalls"]
    assert call["toolName"] == "get_weather" and isinstance(call["input"]["city"], str)
    (tool_result,) = first["toolResults"]
    assert tool_result["output"] == f"Sunny and 21 C in {call['input']['city']}"
    assert second["toolCalls"] == [] and second["text"].strip()
    assert second["finishReason"] == "length"
    sent = result["requests"][1]["body"]["input"]
    outputs = [item for item in sent if item.get("type") == "function_call_output"]
    assert outputs == [
        {"type": "function_call_output", "call_id": call["toolCallId"], "output": tool_result["output"]}
    ]


def test_tool_round_trip_over_scripted(node: Node, shim_scripted: ShimServer) -> None:
    """The scripted upstream calls the offered tool (the shim is under test, not the model):
    call, result, then a text answer that echoes the result it read upstream."""
    result = run(node, shim_scripted, "tool")
    first, second = result["steps"]
    assert first["finishReason"] == "tool-calls"
    assert [c["input"] for c in first["toolCalls"]] == [{"city": "San Francisco"}]
    assert second["finishReason"] == "stop" and second["toolCalls"] == []
    assert result["text"] == f"{scripted_chat.ANSWER} You said: Sunny and 21 C in San Francisco"
    assert first["responseId"] != second["responseId"]

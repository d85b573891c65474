"""The Vercel AI SDK's ``openai.chat(model)`` (npm ``ai@6`` + ``@ai-sdk/openai@3``) against the
shim's ``responses`` route: the SDK speaks Chat Completions, the shim translates each request
into Open Responses.

The SDK validates every body and chunk it reads with zod, so a wrong type anywhere fails the run.
``node/ai_sdk_chat.mjs`` runs one scenario and prints what the SDK returned plus the request
bodies it sent. Upstreams: the scripted Open Responses model (it calls the offered tool; what it
received is read back through ``scripted_responses.requests()``) and the real chain (this shim →
a second shim's chat route → llama.cpp) for plain text and streaming.
"""

from __future__ import annotations

from typing import Any

from tests.clients.conftest import Node, ScriptedResponsesUpstream, ShimServer, assert_reasoning_replayed
from tests.support.scripted_chat import ANSWER

QUESTION = "What is the weather in Paris?"
CHAIN_LIMIT = 8


def run(node: Node, shim: ShimServer, mode: str, limit: int | None = None) -> Any:
    env = {"SHIM_BASE_URL": shim.base_url, "SHIM_MODEL": shim.model}
    if limit is not None:
        env["SHIM_MAX_OUTPUT_TOKENS"] = str(limit)
    return node.run("ai_sdk_chat.mjs", mode, env=env)


def text_parts(parts: list[str]) -> None:
    """One text part streamed as deltas inside one step."""
    assert parts[:3] == ["start", "start-step", "text-start"]
    assert parts[-3:] == ["text-end", "finish-step", "finish"]
    assert set(parts[3:-3]) == {"text-delta"}


# --- the scripted Open Responses upstream ------------------------------------------------------


def test_generate_text_over_responses(
    node: Node, shim_over_responses: ShimServer, scripted_responses: ScriptedResponsesUpstream
) -> None:
    seen = len(scripted_responses.requests())
    result = run(node, shim_over_responses, "text")
    assert result["text"] == f"{ANSWER} You said: What is the capital of France?"
    assert result["finishReason"] == "stop" and result["warnings"] == []
    assert result["usage"]["outputTokens"] == 20 and result["usage"]["inputTokens"] == 20
    assert result["responseId"].startswith("chatcmpl")
    (request,) = result["requests"]
    assert request["url"] == f"{shim_over_responses.base_url}/chat/completions"
    (sent,) = scripted_responses.requests()[seen:]
    assert sent["input"] == [
        {"type": "message", "role": "system", "content": "Answer briefly."},
        {"type": "message", "role": "user", "content": "What is the capital of France?"},
    ]
    assert sent["temperature"] == 0


def test_stream_text_over_responses(
    node: Node, shim_over_responses: ShimServer, scripted_responses: ScriptedResponsesUpstream
) -> None:
    result = run(node, shim_over_responses, "stream")
    text_parts(result["parts"])
    assert len(result["deltas"]) > 5  # word by word, as the upstream streamed it
    assert "".join(result["deltas"]) == result["text"] == f"{ANSWER} You said: Name a colour."
    assert result["finishReason"] == "stop"
    # The SDK asks for include_usage; the shim's usage chunk is what the SDK reports.
    assert result["requests"][0]["body"]["stream_options"] == {"include_usage": True}
    assert result["usage"]["outputTokens"] == 20
    assert scripted_responses.requests()[-1]["stream"] is True


def check_tool_steps(result: Any, sent: list[dict[str, Any]]) -> None:
    """Step 1 calls the tool, the SDK runs it, step 2 answers; upstream the result arrived as
    ``function_call_output`` under the call's id."""
    first, second = result["steps"]
    assert first["finishReason"] == "tool-calls"
    (call,) = first["toolCalls"]
    assert call["toolName"] == "get_weather" and call["input"] == {"city": "San Francisco"}
    (tool_result,) = first["toolResults"]
    assert tool_result == {"toolCallId": call["toolCallId"], "output": "Sunny and 21 C in San Francisco"}
    assert second["finishReason"] == "stop" and second["toolCalls"] == []
    assert result["text"] == second["text"] == f"{ANSWER} You said: {QUESTION}"
    assert first["responseId"] != second["responseId"]
    assert [t["name"] for t in sent[0]["tools"]] == ["get_weather"]
    assert sent[1]["input"][1:] == [
        {
            "type": "function_call",
            "call_id": call["toolCallId"],
            "name": "get_weather",
            "arguments": '{"city":"San Francisco"}',
        },
        {"type": "function_call_output", "call_id": call["toolCallId"], "output": tool_result["output"]},
    ]


def test_tool_step_over_responses(
    node: Node, shim_over_responses: ShimServer, scripted_responses: ScriptedResponsesUpstream
) -> None:
    seen = len(scripted_responses.requests())
    result = run(node, shim_over_responses, "tool")
    check_tool_steps(result, scripted_responses.requests()[seen:])


def test_streamed_tool_step_over_responses(
    node: Node, shim_over_responses: ShimServer, scripted_responses: ScriptedResponsesUpstream
) -> None:
    """Streamed: the SDK rebuilds the call from ``tool_calls`` deltas (one index, arguments in
    pieces), runs it, and streams the answer in the next step."""
    seen = len(scripted_responses.requests())
    result = run(node, shim_over_responses, "stream-tool")
    check_tool_steps(result, scripted_responses.requests()[seen:])
    parts = result["parts"]
    assert parts.count("tool-input-start") == parts.count("tool-call") == parts.count("tool-result") == 1
    assert parts.count("tool-input-delta") > 1
    assert parts.index("tool-call") < parts.index("tool-result") < parts.index("finish-step")
    assert parts.count("finish-step") == 2
    assert "".join(result["deltas"]) == result["text"]


def test_reasoning_continuity_over_responses(
    node: Node, shim_over_reasoning: ShimServer, scripted_reasoning: ScriptedResponsesUpstream
) -> None:
    """Streamed tool step over a reasoning model: the SDK resends the call turn without
    reasoning (``openai.chat`` does not read ``reasoning_content``, and it re-serialises the
    arguments); the shim still finds the turn and puts its reasoning item back upstream."""
    seen = len(scripted_reasoning.requests())
    result = run(node, shim_over_reasoning, "stream-tool")
    first, second = result["steps"]
    (call,) = first["toolCalls"]
    assert first["usage"]["outputTokenDetails"]["reasoningTokens"] == 5
    assert second["text"] == f"{ANSWER} You said: {QUESTION}"
    sent = scripted_reasoning.requests()[seen:]
    assert len(sent) == 2 and not any(i.get("type") == "reasoning" for i in sent[0]["input"])
    assert_reasoning_replayed(sent[1], call["toolCallId"])


# --- the real chain: shim (responses route) → shim (chat route) → llama -------------------------


def test_generate_text_over_chain(node: Node, shim_chain: ShimServer) -> None:
    result = run(node, shim_chain, "text", limit=CHAIN_LIMIT)
    assert result["text"].strip()
    assert result["finishReason"] == "length"  # the base model is cut at maxOutputTokens
    assert result["usage"]["outputTokens"] == CHAIN_LIMIT and result["usage"]["inputTokens"] > 0
    assert result["requests"][0]["body"]["max_tokens"] == CHAIN_LIMIT


def test_stream_text_over_chain(node: Node, shim_chain: ShimServer) -> None:
    result = run(node, shim_chain, "stream", limit=CHAIN_LIMIT)
    text_parts(result["parts"])
    assert len(result["deltas"]) > 1 and result["text"].strip()
    assert "".join(result["deltas"]) == result["text"]
    assert result["finishReason"] == "length"
    # No usage asserted: llama-cpp-python streams none, so the chain has no counts to pass on.

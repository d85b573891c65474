"""openai-agents' ``OpenAIChatCompletionsModel`` against the shim's ``responses`` route.

The Agents SDK here speaks Chat Completions (``chat.completions.create``, streamed under
``Runner.run_streamed``), runs function tools itself and sends the whole history back as Chat
messages; the shim translates each turn into Open Responses. Upstreams: the scripted Open
Responses model (it calls the offered tool) and the real chain (this shim → a second shim's chat
route → llama.cpp) for plain text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.clients.agents_kit import (
    WEATHER_CALLS,
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    Runner,
    get_weather,
    models_over,
)
from tests.clients.conftest import (
    ScriptedResponsesUpstream,
    ShimServer,
    assert_reasoning_replayed,
)
from tests.support.scripted_chat import ANSWER

QUESTION = "What is the weather in Paris?"


@pytest.fixture
async def model_for() -> AsyncIterator[Any]:
    async with models_over(OpenAIChatCompletionsModel) as build:
        yield build


def check_round_trip(result: Any, sent: list[dict[str, Any]]) -> None:
    """Two model turns (call, then text) and the tool's output upstream in the second."""
    assert WEATHER_CALLS == ["San Francisco"]
    assert [i.type for i in result.new_items] == [
        "tool_call_item",
        "tool_call_output_item",
        "message_output_item",
    ]
    call = result.new_items[0].raw_item
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "San Francisco"}
    assert result.final_output == f"{ANSWER} You said: {QUESTION}"
    assert len(result.raw_responses) == 2
    first, second = sent
    assert [t["name"] for t in first["tools"]] == ["get_weather"]
    outputs = [i for i in second["input"] if i.get("type") == "function_call_output"]
    assert outputs == [
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny and 21 C in San Francisco"}
    ]


async def test_function_tool_round_trip_over_responses(
    shim_over_responses: ShimServer, scripted_responses: ScriptedResponsesUpstream, model_for: Any
) -> None:
    seen = len(scripted_responses.requests())
    agent = Agent(name="weather", tools=[get_weather], model=model_for(shim_over_responses))
    result = await Runner.run(agent, QUESTION)
    sent = scripted_responses.requests()[seen:]
    check_round_trip(result, sent)
    assert not any(body.get("stream") for body in sent)
    usage = result.context_wrapper.usage
    assert (usage.requests, usage.output_tokens) == (2, 40)


async def test_function_tool_round_trip_streamed_over_responses(
    shim_over_responses: ShimServer, scripted_responses: ScriptedResponsesUpstream, model_for: Any
) -> None:
    """Streamed: the SDK rebuilds the tool call from Chat chunks and the text from deltas."""
    seen = len(scripted_responses.requests())
    agent = Agent(name="weather", tools=[get_weather], model=model_for(shim_over_responses))
    result = Runner.run_streamed(agent, QUESTION)
    kinds = [e.data.type async for e in result.stream_events() if e.type == "raw_response_event"]
    assert kinds.count("response.completed") == 2
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.count("response.output_text.delta") > 5  # word by word, as the upstream sent it
    sent = scripted_responses.requests()[seen:]
    check_round_trip(result, sent)
    assert all(body.get("stream") is True for body in sent)


async def test_reasoning_continuity_streamed_over_responses(
    shim_over_reasoning: ShimServer, scripted_reasoning: ScriptedResponsesUpstream, model_for: Any
) -> None:
    """The SDK reads the streamed ``reasoning_content`` into reasoning items, but sends Chat
    history without them; the shim puts the remembered item (with its ``encrypted_content``)
    back in front of the tool call upstream."""
    seen = len(scripted_reasoning.requests())
    agent = Agent(name="weather", tools=[get_weather], model=model_for(shim_over_reasoning))
    result = Runner.run_streamed(agent, QUESTION)
    async for _ in result.stream_events():
        pass
    kinds = [i.type for i in result.new_items]
    assert kinds == [
        "reasoning_item",
        "tool_call_item",
        "tool_call_output_item",
        "reasoning_item",
        "message_output_item",
    ]
    (summary,) = result.new_items[0].raw_item.summary
    assert summary.text == "The user wants an answer; think first."
    assert result.final_output == f"{ANSWER} You said: {QUESTION}"
    sent = scripted_reasoning.requests()[seen:]
    assert len(sent) == 2
    assert_reasoning_replayed(sent[1], result.new_items[1].raw_item.call_id)


async def test_text_over_chain(shim_chain: ShimServer, model_for: Any) -> None:
    agent = Agent(
        name="terse",
        instructions="Answer in one short sentence.",
        model=model_for(shim_chain),
        model_settings=ModelSettings(max_tokens=8, temperature=0),
    )
    result = await Runner.run(agent, "What is the capital of France?")
    assert isinstance(result.final_output, str) and result.final_output.strip()
    assert result.context_wrapper.usage.output_tokens == 8  # cut at max_tokens through both shims


async def test_streamed_text_over_chain(shim_chain: ShimServer, model_for: Any) -> None:
    agent = Agent(
        name="terse",
        model=model_for(shim_chain),
        model_settings=ModelSettings(max_tokens=8, temperature=0),
    )
    result = Runner.run_streamed(agent, "Name a colour.")
    deltas = [
        e.data.delta
        async for e in result.stream_events()
        if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"
    ]
    assert len(deltas) > 1
    assert "".join(deltas) == result.final_output and result.final_output.strip()

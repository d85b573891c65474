"""LangChain ``ChatOpenAI`` in its default mode (Chat Completions) against the shim's
``responses`` route: the shim translates each Chat request into Open Responses.

Two upstreams: the scripted Open Responses model (``shim_over_responses``; it calls the offered
tool, so the tool round trip is the shim's, not a model's choice), and the real chain
(``shim_chain``: this shim → a second shim's chat route → llama.cpp) for plain text and
streaming. Nothing here may reach the network: the same tiktoken guard as ``test_langchain.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.conftest import (
    ScriptedResponsesUpstream,
    ShimServer,
    assert_reasoning_replayed,
)
from tests.clients.langchain_kit import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    ToolMessage,
    get_weather,
    langchain_openai,
    offline,  # noqa: F401 (the autouse fixture)
)
from tests.support.scripted_chat import ANSWER

QUESTION = "What is the weather in Paris?"


def chat_for(shim: ShimServer, **kwargs: Any) -> Any:
    # No ``use_responses_api``: the default mode speaks Chat Completions (the ``chatcmpl`` ids
    # the tests check prove it; a Responses request would get ``resp_`` ids back).
    return langchain_openai.ChatOpenAI(
        model=shim.model, base_url=shim.base_url, api_key="sk-test", max_retries=0, timeout=120, **kwargs
    )


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    return whole


# --- the scripted Open Responses upstream ------------------------------------------------------


def test_invoke_over_responses(
    shim_over_responses: ShimServer, scripted_responses: ScriptedResponsesUpstream
) -> None:
    seen = len(scripted_responses.requests())
    message = chat_for(shim_over_responses).invoke([("system", "Answer briefly."), ("human", "Hello there")])
    assert isinstance(message, AIMessage)
    assert message.text == f"{ANSWER} You said: Hello there"
    meta = message.response_metadata
    assert meta["finish_reason"] == "stop" and meta["model_name"] == shim_over_responses.model
    assert meta["id"].startswith("chatcmpl")
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] == 20
    (sent,) = scripted_responses.requests()[seen:]
    assert sent["input"] == [
        {"type": "message", "role": "system", "content": "Answer briefly."},
        {"type": "message", "role": "user", "content": "Hello there"},
    ]
    assert not sent.get("stream") and sent["store"] is False  # a stateless route: whole history


def test_stream_over_responses(
    shim_over_responses: ShimServer, scripted_responses: ScriptedResponsesUpstream
) -> None:
    chunks = list(chat_for(shim_over_responses, stream_usage=True).stream("Hello there"))
    assert len([c for c in chunks if c.text]) > 5  # word by word, as the upstream streamed it
    whole = merged(chunks)
    assert whole.text == f"{ANSWER} You said: Hello there"
    assert whole.response_metadata["finish_reason"] == "stop"
    # stream_usage → include_usage: the usage chunk arrived before [DONE].
    assert whole.usage_metadata is not None and whole.usage_metadata["output_tokens"] == 20
    assert scripted_responses.requests()[-1]["stream"] is True


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_tool_round_trip_over_responses(
    shim_over_responses: ShimServer, scripted_responses: ScriptedResponsesUpstream, stream: bool
) -> None:
    """The scripted upstream calls the offered tool; LangChain sends the call and its result
    back as Chat messages; upstream they arrive as ``function_call`` + ``function_call_output``."""
    chat = chat_for(shim_over_responses).bind_tools([get_weather])

    def ask(history: list[Any]) -> Any:
        return merged(list(chat.stream(history))) if stream else chat.invoke(history)

    history: list[Any] = [HumanMessage(QUESTION)]
    first = ask(history)
    (call,) = first.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "San Francisco"}
    assert first.response_metadata["finish_reason"] == "tool_calls"
    output = get_weather.invoke(call["args"])
    history += [first, ToolMessage(output, tool_call_id=call["id"])]
    seen = len(scripted_responses.requests())
    second = ask(history)
    assert not second.tool_calls
    assert second.text == f"{ANSWER} You said: {QUESTION}"
    assert second.response_metadata["finish_reason"] == "stop"
    if not stream:
        assert second.response_metadata["id"].startswith("chatcmpl")
    (sent,) = scripted_responses.requests()[seen:]
    kinds = [item.get("type", "message") for item in sent["input"]]
    assert kinds == ["message", "function_call", "function_call_output"]
    assert sent["input"][1]["call_id"] == call["id"] == sent["input"][2]["call_id"]
    assert sent["input"][1]["name"] == "get_weather"
    assert sent["input"][2]["output"] == output
    assert [t["name"] for t in sent["tools"]] == ["get_weather"]


def test_reasoning_continuity_over_responses(
    shim_over_reasoning: ShimServer, scripted_reasoning: ScriptedResponsesUpstream
) -> None:
    """LangChain resends the tool-call turn without its reasoning (its default mode does not
    read ``reasoning_content``); the shim puts the remembered reasoning item back upstream."""
    chat = chat_for(shim_over_reasoning).bind_tools([get_weather])
    history: list[Any] = [HumanMessage(QUESTION)]
    first = chat.invoke(history)
    (call,) = first.tool_calls
    assert first.usage_metadata is not None
    assert first.usage_metadata["output_token_details"]["reasoning"] == 5
    history += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    seen = len(scripted_reasoning.requests())
    second = chat.invoke(history)
    assert second.text == f"{ANSWER} You said: {QUESTION}"
    (sent,) = scripted_reasoning.requests()[seen:]
    assert_reasoning_replayed(sent, call["id"])


# --- the real chain: shim (responses route) → shim (chat route) → llama -------------------------


def test_invoke_over_chain(shim_chain: ShimServer) -> None:
    message = chat_for(shim_chain, max_tokens=8, temperature=0).invoke("What is the capital of France?")
    assert message.text.strip()
    # The base model does not stop within 8 tokens: the cut survives both translations.
    assert message.response_metadata["finish_reason"] == "length"
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] == 8


def test_stream_over_chain(shim_chain: ShimServer) -> None:
    chat = chat_for(shim_chain, max_tokens=8, temperature=0)
    chunks = list(chat.stream("Name a colour."))
    whole = merged(chunks)
    assert len([c for c in chunks if c.text]) > 1 and whole.text.strip()
    assert whole.response_metadata["finish_reason"] == "length"
    assert whole.response_metadata["model_name"] == shim_chain.model
    # No usage asserted: llama-cpp-python streams none, so the chain has no counts to pass on.

"""LangChain ``ChatOpenAI(use_responses_api=True)`` (PyPI ``langchain-openai``) against ``shim serve``.

Nothing here may reach the network: LangChain only needs tiktoken to count tokens, which these
tests never do, and a fixture makes any attempt to download an encoding fail the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.clients.conftest import ShimServer
from tests.clients.langchain_kit import (
    AIMessage,
    HumanMessage,
    ToolMessage,
    get_weather,
    langchain_openai,
    offline,  # noqa: F401 (the autouse fixture)
)
from tests.support import scripted_chat


@pytest.fixture
def chat_for() -> Iterator[Any]:
    def build(shim: ShimServer, **kwargs: Any) -> Any:
        return langchain_openai.ChatOpenAI(
            model=shim.model,
            base_url=shim.base_url,
            api_key="sk-test",  # type: ignore[arg-type]
            use_responses_api=True,
            max_retries=0,
            timeout=120,
            **kwargs,
        )

    yield build


def test_invoke_over_llama(shim_llama: ShimServer, chat_for: Any) -> None:
    chat = chat_for(shim_llama, max_tokens=8, temperature=0)
    message = chat.invoke([("system", "Answer briefly."), ("human", "What is the capital of France?")])
    assert isinstance(message, AIMessage)
    assert message.text.strip()
    assert message.response_metadata["model_name"] == shim_llama.model
    # The base model does not stop on its own: the shim reports the cut, LangChain passes it on.
    assert message.response_metadata["status"] == "incomplete"
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] == 8


def test_stream_over_llama(shim_llama: ShimServer, chat_for: Any) -> None:
    chat = chat_for(shim_llama, max_tokens=8, temperature=0)
    chunks = list(chat.stream("Name a colour."))
    text = "".join(chunk.text for chunk in chunks)
    assert len(chunks) > 2 and text.strip()
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert whole.text == text
    assert whole.response_metadata.get("status") == "incomplete"


def test_forced_tool_call_over_llama(shim_llama: ShimServer, chat_for: Any) -> None:
    """llama honours a forced ``tool_choice``: a real model's tool call through the shim."""
    chat = chat_for(shim_llama, max_tokens=48, temperature=0).bind_tools(
        [get_weather], tool_choice="get_weather"
    )
    message = chat.invoke("What is the weather in Paris?")
    (call,) = message.tool_calls
    assert call["name"] == "get_weather"
    assert isinstance(call["args"].get("city"), str)
    assert call["id"]


@pytest.mark.parametrize("use_previous_response_id", [False, True], ids=["full-history", "previous-id"])
def test_tool_round_trip_over_scripted(
    shim_scripted: ShimServer, chat_for: Any, use_previous_response_id: bool
) -> None:
    """The scripted upstream calls the offered tool (the shim is under test, not the model).
    LangChain sends the call and its result back, either as the whole history or, with
    ``use_previous_response_id``, only the result after the stored response."""
    chat = chat_for(shim_scripted, use_previous_response_id=use_previous_response_id).bind_tools(
        [get_weather]
    )
    history: list[Any] = [HumanMessage("What is the weather in Paris?")]
    first = chat.invoke(history)
    (call,) = first.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "San Francisco"}
    history += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    second = chat.invoke(history)
    assert not second.tool_calls
    assert second.text == f"{scripted_chat.ANSWER} You said: Sunny and 21 C in San Francisco"
    assert second.response_metadata["status"] == "completed"
    assert second.response_metadata["id"].startswith("resp_")

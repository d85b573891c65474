"""The real ``openai`` SDK's Chat Completions API against the shim over an Open Responses upstream.

``chat.completions.create`` with and without streaming, and the ``.stream()`` helper (which
accumulates chunks itself and so checks indexes, tool-call deltas and the usage chunk), all
in-process through ``httpx2.ASGITransport`` (openai 3.x's HTTP client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from shim.settings import Route
from tests.server.harness import UPSTREAM_URL, Shim
from tests.server.openai_sdk import openai_sdk
from tests.support.scripted_responses import ScriptedResponses

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2", reason="openai 3.x uses httpx2 for its http_client")

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
HELLO: list[dict[str, Any]] = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def upstream() -> ScriptedResponses:
    return ScriptedResponses(reasoning=["Let me ", "think."])


@pytest.fixture
async def sdk(make_shim: Callable[..., Shim], upstream: ScriptedResponses) -> AsyncIterator[Any]:
    shim = make_shim(target=upstream, routes=(Route(upstream=UPSTREAM_URL, kind="responses"),))
    async with openai_sdk(shim) as client:
        yield client


async def test_create(sdk: Any) -> None:
    completion = await sdk.chat.completions.create(model="m", messages=HELLO, temperature=0, seed=1)
    choice = completion.choices[0]
    assert choice.message.content.endswith("You said: Hello")
    assert choice.finish_reason == "stop"
    assert choice.message.model_extra["reasoning_content"] == "Let me think."
    assert completion.usage.total_tokens == 30


async def test_create_stream(sdk: Any) -> None:
    stream = await sdk.chat.completions.create(
        model="m", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    text, finishes, usage = [], [], None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert "".join(text).endswith("You said: Hello")
    assert finishes == ["stop"] and usage is not None and usage.completion_tokens == 20


async def test_stream_helper(sdk: Any) -> None:
    async with sdk.chat.completions.stream(model="m", messages=HELLO, stop=["hello"]) as stream:
        kinds = {event.type async for event in stream}
        final = await stream.get_final_completion()
    assert {"chunk", "content.delta", "content.done"} <= kinds
    assert final.choices[0].message.content == "The scripted upstream says "
    assert final.choices[0].finish_reason == "stop"


async def test_stream_helper_tool_round_trip(sdk: Any, upstream: ScriptedResponses) -> None:
    async with sdk.chat.completions.stream(model="m", messages=HELLO, tools=[WEATHER]) as stream:
        final = await stream.get_final_completion()
    message = final.choices[0].message
    call = message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"city": "San Francisco"}',
    )
    history = [
        *HELLO,
        message.model_dump(exclude_none=True, exclude={"parsed"}),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
    ]
    answer = await sdk.chat.completions.create(model="m", messages=history, tools=[WEATHER])
    assert answer.choices[0].finish_reason == "stop"
    sent = upstream.requests[-1]["input"]
    assert [i["type"] for i in sent] == ["message", "reasoning", "function_call", "function_call_output"]
    assert sent[1]["encrypted_content"] == "enc:1"


async def test_n_choices(sdk: Any) -> None:
    completion = await sdk.chat.completions.create(model="m", messages=HELLO, n=2)
    assert [c.index for c in completion.choices] == [0, 1]

"""End to end: clients → the shim → llama-server's own ``/v1/responses`` (a stateless ``responses`` route).

llama-server converts a Responses request into a Chat one and keeps nothing: it refuses
``previous_response_id`` with a 400 and has no ``GET /v1/responses/{id}``
(``fixtures/_recordings/llamacpp-server/probes/``). The shim supplies all of it from its store:
it expands ``previous_response_id`` into the whole input, and answers GET and ``input_items``
itself. Chat Completions clients reach the same endpoint through the shim's translation
(``shim/translate/responses_request.py``). One llama-server process for the session (shared
with test_llama_server.py), behind a recording proxy so the tests read what went upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.clients.conftest import Node, node  # noqa: F401  (the npm clients' fixture)
from tests.clients.langchain_kit import langchain_openai, offline  # noqa: F401 (autouse: no network)
from tests.e2e.conftest import MODEL, ShimServer, output_text, stream_sse
from tests.support.recording_proxy import RecordingProxy

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def client(shim_llama_server_responses: ShimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shim_llama_server_responses.base_url, timeout=120) as c:
        yield c


@pytest.fixture
def sdk(shim_llama_server_responses: ShimServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=shim_llama_server_responses.base_url, api_key="unused", max_retries=0, timeout=120
    )


def sent_to(proxy: RecordingProxy) -> dict[str, Any]:
    return proxy.bodies[-1]


def body(input: Any, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": input, "temperature": 0, "max_output_tokens": 6, **extra}


# --- Chat Completions clients over llama-server's /v1/responses -----------------------------------
# llama-server's /v1/responses ends an answer cut by max_output_tokens as "completed", not
# "incomplete" (fixtures/chat_over_responses/llama-server/length_stream): a Chat client sees
# finish_reason "stop" for it, though usage shows the whole budget spent.


def test_sdk_chat_completion(sdk: openai.OpenAI, llama_server_proxy: RecordingProxy) -> None:
    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Say hello."},
        ],
        temperature=0,
        max_tokens=6,
    )
    (choice,) = completion.choices
    assert choice.message.role == "assistant" and (choice.message.content or "").strip()
    assert choice.finish_reason == "stop"  # llama-server: "completed" (see above)
    assert completion.usage is not None and completion.usage.completion_tokens == 6
    sent = sent_to(llama_server_proxy)
    assert sent["max_output_tokens"] == 6 and "messages" not in sent
    assert [item["role"] for item in sent["input"]] == ["system", "user"]


def test_sdk_chat_stream_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count to three."}],
        temperature=0,
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]  # llama-server: "completed" (see above)
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None and usage.completion_tokens == 6


def test_sdk_chat_multi_turn(sdk: openai.OpenAI, llama_server_proxy: RecordingProxy) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    completion = sdk.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=4)
    assert completion.choices[0].message.content is not None
    sent = sent_to(llama_server_proxy)["input"]
    assert [item["role"] for item in sent] == ["user", "assistant", "user"]


def test_sdk_chat_required_tool_choice_reaches_the_server(
    sdk: openai.OpenAI, llama_server_proxy: RecordingProxy
) -> None:
    """``required`` goes through as llama-server reads it; with chatml the model answers in text
    (fixtures/chat_over_responses/llama-server/tool_call_json)."""
    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
        temperature=0,
        max_tokens=6,
    )
    (choice,) = completion.choices
    assert choice.message.content and not choice.message.tool_calls
    sent = sent_to(llama_server_proxy)
    assert sent["tool_choice"] == "required"
    assert [t["name"] for t in sent["tools"]] == ["get_weather"]


def test_langchain_chat_openai(shim_llama_server_responses: ShimServer) -> None:
    model = langchain_openai.ChatOpenAI(
        model=MODEL,
        base_url=shim_llama_server_responses.base_url,
        api_key="unused",
        temperature=0,
        max_tokens=6,
        max_retries=0,
    )
    answer = model.invoke("Say hello.")
    assert isinstance(answer.content, str) and answer.content.strip()
    assert answer.response_metadata["finish_reason"] == "stop"  # llama-server: "completed"
    streamed = "".join(str(chunk.content) for chunk in model.stream("Say hello."))
    assert streamed.strip()


# --- Open Responses clients: state from the shim's store ------------------------------------------


def test_previous_response_id_is_expanded_by_the_shim(
    client: httpx.Client, llama_server_proxy: RecordingProxy
) -> None:
    first = client.post("/responses", json=body("My name is Ada."))
    assert first.status_code == 200, first.text
    first_id = first.json()["id"]
    second = client.post("/responses", json=body("What is my name?", previous_response_id=first_id))
    assert second.status_code == 200, second.text
    # The answer is llama-server's own bytes (a passthrough route relays them unchanged); the
    # history it answered from is the shim's.
    sent = sent_to(llama_server_proxy)
    assert "previous_response_id" not in sent
    assert [item.get("role") for item in sent["input"]] == ["user", "assistant", "user"]
    texts = ["".join(part["text"] for part in item["content"]) for item in sent["input"]]
    assert texts == ["My name is Ada.", output_text(first.json()), "What is my name?"]
    third = client.post("/responses", json=body("And again?", previous_response_id=second.json()["id"]))
    assert third.status_code == 200, third.text
    assert len(sent_to(llama_server_proxy)["input"]) == 5


def test_streamed_chain_get_and_input_items(client: httpx.Client, llama_server_proxy: RecordingProxy) -> None:
    # llama-server's stream ends after response.completed, without the spec's data: [DONE]
    # (relayed as it is), so only the event order is checked here.
    first = stream_sse(client, body("My name is Ada."))
    assert first.types[0] == "response.created" and first.types[-1] == "response.completed"
    first_id = first.final["id"]
    second = stream_sse(client, body("What is my name?", previous_response_id=first_id))
    assert second.types[-1] == "response.completed"
    second_id = second.final["id"]
    assert "previous_response_id" not in sent_to(llama_server_proxy)
    # llama-server keeps nothing (GET there is a 404); the shim's store answers.
    got = client.get(f"/responses/{second_id}")
    assert got.status_code == 200, got.text
    assert got.json()["id"] == second_id
    assert output_text(got.json()) == output_text(second.final)
    items = client.get(f"/responses/{second_id}/input_items")
    assert items.status_code == 200, items.text
    assert [item["role"] for item in items.json()["data"]] == ["user"]


def test_unknown_previous_response_id_is_404(client: httpx.Client) -> None:
    resp = client.post("/responses", json=body("Hi.", previous_response_id="resp_unknown"))
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "previous_response_not_found"


# --- the Vercel AI SDK's openai.chat() (npm, tests/clients/node) --------------------------------


@pytest.fixture
def npm(request: pytest.FixtureRequest) -> Node:
    """tests/clients' ``node`` fixture (node + the npm clients, or skip / fail under CI)."""
    found: Node = request.getfixturevalue("node")
    return found


def ai_sdk(clients: Node, shim: ShimServer, mode: str) -> Any:
    env = {"SHIM_BASE_URL": shim.base_url, "SHIM_MODEL": MODEL, "SHIM_MAX_OUTPUT_TOKENS": "6"}
    return clients.run("ai_sdk_chat.mjs", mode, env=env)


def test_ai_sdk_generate_text(npm: Node, shim_llama_server_responses: ShimServer) -> None:
    result = ai_sdk(npm, shim_llama_server_responses, "text")
    assert result["text"].strip()
    assert result["finishReason"] == "stop" and result["warnings"] == []  # "completed" (see above)
    assert result["usage"]["outputTokens"] == 6 and result["usage"]["inputTokens"] > 0


def test_ai_sdk_stream_text_with_usage(npm: Node, shim_llama_server_responses: ShimServer) -> None:
    result = ai_sdk(npm, shim_llama_server_responses, "stream")
    assert "".join(result["deltas"]) == result["text"] and result["text"].strip()
    assert result["finishReason"] == "stop"  # llama-server: "completed" (see above)
    # llama-server's stream reports usage, so the Chat client gets a usage chunk with counts.
    assert result["usage"]["outputTokens"] == 6

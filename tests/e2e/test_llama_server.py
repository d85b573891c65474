"""End to end: Open Responses clients → the shim → llama.cpp's own llama-server (a ``chat`` route).

llama-server is built from the llama-cpp-python sdist (tests/support/llama_server.py) and serves
Gemma 3 270M with ``--chat-template chatml --jinja``, one process for the session. The shim
speaks to its ``/v1/chat/completions`` with the ``llamacpp-server`` dialect, through a recording
proxy so a test can read what went upstream. Temperature 0, small budgets: a text answer from
this base model runs into ``max_output_tokens`` (``incomplete``). What the server does is written
up in docs/upstreams.md and recorded by scripts/record_llamacpp_server.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.checks.oracle import validate_resource
from tests.clients.langchain_kit import langchain_openai, offline  # noqa: F401 (autouse: no network)
from tests.e2e.conftest import MODEL, ShimServer, output_text, stream_sse
from tests.e2e.test_llama import STREAM_EVENT, WEATHER_TOOL, body, check_stream, create
from tests.support.recording_proxy import RecordingProxy

FORCED = {"type": "function", "name": "get_weather"}
TOO_LONG = "word " * 5000  # more than a 4096-token slot


@pytest.fixture
def client(shim_llama_server: ShimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shim_llama_server.base_url, timeout=120) as c:
        yield c


def last_sent(proxy: RecordingProxy) -> dict[str, Any]:
    return proxy.bodies[-1]


# --- text -----------------------------------------------------------------------------------------


def test_plain_text(client: httpx.Client, llama_server_proxy: RecordingProxy) -> None:
    resource = create(client, body("Say hello.", max_output_tokens=8))
    assert resource["status"] == "incomplete"
    assert resource["incomplete_details"] == {"reason": "max_output_tokens"}
    assert output_text(resource).strip()
    usage = resource["usage"]
    assert usage["output_tokens"] == 8
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    sent = last_sent(llama_server_proxy)
    assert sent["max_completion_tokens"] == 8
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}]


def test_streaming_text_carries_usage(client: httpx.Client) -> None:
    """Unlike llama-cpp-python, llama-server honours ``stream_options.include_usage``."""
    sse = stream_sse(client, body("Count to three.", max_output_tokens=8))
    check_stream(sse)
    assert sse.types[-1] == "response.incomplete"
    deltas = "".join(e["delta"] for e in sse.events if e["type"] == "response.output_text.delta")
    assert deltas.strip() and output_text(sse.final) == deltas
    usage = sse.final["usage"]
    assert usage["output_tokens"] == 8 and usage["input_tokens"] > 0


def test_streaming_matches_non_streaming(client: httpx.Client) -> None:
    payload = body("Write a haiku about rain.", max_output_tokens=12)
    create(client, payload)  # the same prompt-cache state for both (docs/upstreams.md)
    resource = create(client, payload)
    sse = stream_sse(client, payload)
    check_stream(sse)
    assert output_text(sse.final) == output_text(resource)
    assert sse.final["usage"]["output_tokens"] == resource["usage"]["output_tokens"]


# --- system prompt, developer messages ------------------------------------------------------------


def test_instructions_reach_the_model(client: httpx.Client, llama_server_proxy: RecordingProxy) -> None:
    """The chatml template renders system messages (the gemma format of llama-cpp-python drops them)."""
    plain = create(client, body("Hello.", max_output_tokens=2))
    pirate = create(
        client, body("Hello.", instructions="You are a pirate. Answer like one.", max_output_tokens=2)
    )
    assert pirate["instructions"] == "You are a pirate. Answer like one."
    assert pirate["usage"]["input_tokens"] >= plain["usage"]["input_tokens"] + 8
    assert last_sent(llama_server_proxy)["messages"][0] == {
        "role": "system",
        "content": "You are a pirate. Answer like one.",
    }


def test_developer_message_streamed(client: httpx.Client, llama_server_proxy: RecordingProxy) -> None:
    items = [
        {"role": "developer", "content": [{"type": "input_text", "text": "Be terse."}]},
        {"role": "user", "content": "Hello."},
    ]
    sse = stream_sse(client, body(items, max_output_tokens=4))
    check_stream(sse)
    assert sse.types[-1] == "response.incomplete"
    # Sent as it came: llama-server maps developer to system and reads content-part arrays.
    assert last_sent(llama_server_proxy)["messages"][0] == {
        "role": "developer",
        "content": [{"type": "text", "text": "Be terse."}],
    }


# --- state: previous_response_id from the shim's store ---------------------------------------------


def test_multi_turn_previous_response_id(client: httpx.Client, llama_server_proxy: RecordingProxy) -> None:
    first = create(client, body("My name is Ada.", max_output_tokens=6))
    second = create(client, body("What is my name?", max_output_tokens=6, previous_response_id=first["id"]))
    assert second["previous_response_id"] == first["id"]
    messages = last_sent(llama_server_proxy)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    # Content-part arrays on every role: llama-server reads them (the dialect keeps OpenAI's shape).
    texts = ["".join(part["text"] for part in m["content"]) for m in messages]
    assert texts == ["My name is Ada.", output_text(first), "What is my name?"]
    alone = create(client, body("What is my name?", max_output_tokens=6))
    assert second["usage"]["input_tokens"] > alone["usage"]["input_tokens"] + first["usage"]["output_tokens"]


def test_multi_turn_streamed_chain_of_three(client: httpx.Client, llama_server_proxy: RecordingProxy) -> None:
    previous: str | None = None
    for turn in ("My name is Ada.", "I live in Paris.", "Where do I live?"):
        extra = {"previous_response_id": previous} if previous else {}
        sse = stream_sse(client, body(turn, max_output_tokens=4, **extra))
        check_stream(sse)
        assert sse.final["previous_response_id"] == previous
        previous = sse.final["id"]
    roles = [m["role"] for m in last_sent(llama_server_proxy)["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    resp = client.get(f"/responses/{previous}/input_items")
    assert resp.status_code == 200, resp.text
    assert [item["role"] for item in resp.json()["data"]] == ["user"]


# --- tools ----------------------------------------------------------------------------------------
# With --chat-template chatml llama-server has no tool-call format for the template: it neither
# renders the tools nor constrains the output, and this base model answers in text (the
# recordings in fixtures/responses_over_chat/llamacpp-server/tool_call_*). What these tests hold
# is what the shim sends and that the text answer comes back as a valid response.


def test_forced_tool_call_is_sent_as_required_with_only_that_tool(
    client: httpx.Client, llama_server_proxy: RecordingProxy
) -> None:
    other = {**WEATHER_TOOL, "name": "get_time", "description": "The time in a city."}
    payload = body(
        "Call get_weather for Paris.", tools=[WEATHER_TOOL, other], tool_choice=FORCED, max_output_tokens=8
    )
    resource = create(client, payload)
    assert resource["tool_choice"] == FORCED and len(resource["tools"]) == 2
    assert resource["status"] == "incomplete"
    sent = last_sent(llama_server_proxy)
    assert sent["tool_choice"] == "required"
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]


def test_forced_tool_call_streamed_answer_is_text(
    client: httpx.Client, llama_server_proxy: RecordingProxy
) -> None:
    payload = body(
        "Call get_weather for Paris.", tools=[WEATHER_TOOL], tool_choice=FORCED, max_output_tokens=8
    )
    sse = stream_sse(client, payload)
    check_stream(sse)
    assert sse.types[-1] == "response.incomplete"
    assert [item["type"] for item in sse.final["output"]] == ["message"]
    assert last_sent(llama_server_proxy)["tool_choice"] == "required"


def test_forced_tool_call_naming_no_offered_tool_is_a_400(client: httpx.Client) -> None:
    payload = body("Hi.", tools=[WEATHER_TOOL], tool_choice={"type": "function", "name": "nope"})
    resp = client.post("/responses", json=payload)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "tool_choice"


# --- token budget and context ----------------------------------------------------------------------


def test_max_output_tokens_streamed_is_incomplete(client: httpx.Client) -> None:
    sse = stream_sse(client, body("Tell me a story.", max_output_tokens=4))
    check_stream(sse)
    assert sse.types[-1] == "response.incomplete"
    assert sse.final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert sse.final["output"][-1]["status"] == "incomplete"


def test_context_overflow_is_a_400(client: httpx.Client) -> None:
    resp = client.post("/responses", json=body(TOO_LONG, max_output_tokens=4))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "exceeds the available context size" in error["message"]
    # llama-server says `"code": 400`; the client gets OpenAI's code (mappings/llamacpp-server.toml)
    assert (error["code"], error["param"]) == ("context_length_exceeded", "input")


def test_context_overflow_streamed_is_a_400(client: httpx.Client) -> None:
    """llama-server refuses before the stream opens (unlike llama-cpp-python's empty 200 stream)."""
    resp = client.post("/responses", json=body(TOO_LONG, max_output_tokens=4, stream=True))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.json()["error"]["code"] == "context_length_exceeded"


# --- structured output ------------------------------------------------------------------------------


def test_json_schema_is_enforced(client: httpx.Client, llama_server_proxy: RecordingProxy) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    text = {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}
    resp = client.post("/responses", json=body("Name a city as JSON.", text=text, max_output_tokens=24))
    assert resp.status_code == 200, resp.text
    validate_resource(resp.content)
    assert "x-shim-diagnostics" not in resp.headers
    assert last_sent(llama_server_proxy)["response_format"]["type"] == "json_schema"
    resource = resp.json()
    if resource["status"] == "completed":
        assert isinstance(json.loads(output_text(resource))["city"], str)


# --- the openai SDK ---------------------------------------------------------------------------------


@pytest.fixture
def sdk(shim_llama_server: ShimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=shim_llama_server.base_url, api_key="unused", max_retries=0, timeout=120)


def test_sdk_create(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model=MODEL, input="Say hello.", temperature=0, max_output_tokens=8)
    assert response.status == "incomplete"
    assert response.output_text.strip()
    assert response.usage is not None and response.usage.output_tokens == 8


def test_sdk_stream_events_validate(sdk: openai.OpenAI) -> None:
    stream = sdk.responses.create(
        model=MODEL, input="Count to three.", temperature=0, max_output_tokens=8, stream=True
    )
    types = []
    for event in stream:
        STREAM_EVENT.validate_python(event.to_dict(mode="json"))
        types.append(event.type)
    assert types[0] == "response.created" and types[-1] == "response.incomplete"


def test_langchain_responses_api(shim_llama_server: ShimServer) -> None:
    chat = langchain_openai.ChatOpenAI(
        model=MODEL,
        base_url=shim_llama_server.base_url,
        api_key="unused",  # type: ignore[arg-type]
        use_responses_api=True,
        max_tokens=8,
        temperature=0,
        max_retries=0,
        timeout=120,
    )
    message = chat.invoke([("system", "Answer briefly."), ("human", "What is the capital of France?")])
    assert message.text.strip()
    assert message.response_metadata["status"] == "incomplete"
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] == 8
    streamed = list(chat.stream("Name a colour."))
    assert "".join(chunk.text for chunk in streamed).strip()

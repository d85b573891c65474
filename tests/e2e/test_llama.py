"""End to end: Open Responses clients → the shim (a real server) → llama-cpp-python (Gemma 3 270M).

Everything runs at temperature 0 with small token budgets. The model is a base model: it almost
never ends a turn on its own, so a text answer normally ends ``incomplete`` with reason
``max_output_tokens``; only a forced tool call (finish_reason ``tool_calls``) completes.
What this upstream really does is written up in docs/upstreams.md.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import openai
import pydantic
import pytest
from openai.types.responses import ResponseStreamEvent

from tests.checks.lifecycle import check_lifecycle
from tests.checks.oracle import validate_event, validate_resource
from tests.e2e.conftest import MODEL, SSE, ShimServer, output_text, stream_sse

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a location.",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}
# A 1x1 PNG.
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAA"
    "AABJRU5ErkJggg=="
)


def body(input: Any, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": input, "temperature": 0, "max_output_tokens": 16, **extra}


def create(client: httpx.Client, payload: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/responses", json=payload)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    validate_resource(resp.content)
    data: dict[str, Any] = resp.json()
    return data


def check_stream(sse: SSE) -> None:
    """Framing, the spec's event schemas, and our lifecycle rules."""
    assert sse.content_type.startswith("text/event-stream"), sse.content_type
    assert sse.done, "the stream must end with data: [DONE]"
    assert not sse.after_done, sse.after_done
    for raw, name, event in zip(sse.raw, sse.event_names, sse.events, strict=True):
        assert name == event["type"], (name, event["type"])
        validate_event(raw)
    check_lifecycle(sse.events)


# --- plain text ---------------------------------------------------------------------------------


def test_plain_text(client: httpx.Client) -> None:
    resource = create(client, body("Say hello.", max_output_tokens=24))
    assert resource["status"] in ("completed", "incomplete")
    if resource["status"] == "incomplete":
        assert resource["incomplete_details"] == {"reason": "max_output_tokens"}
    assert output_text(resource).strip()
    assert resource["model"] == MODEL
    usage = resource["usage"]
    assert usage["output_tokens"] <= 24
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_user_text_reaches_the_model(client: httpx.Client) -> None:
    """String content for users: the gemma chat format turns content arrays into empty turns."""
    short = create(client, body("Hi.", max_output_tokens=1))
    parts = [{"type": "input_text", "text": "Please tell me a long story about a dragon and a knight."}]
    long = create(client, body([{"role": "user", "content": parts}], max_output_tokens=1))
    assert long["usage"]["input_tokens"] > short["usage"]["input_tokens"] + 8


def test_streaming_text(client: httpx.Client) -> None:
    sse = stream_sse(client, body("Count to three."))
    check_stream(sse)
    assert sse.types[-1] in ("response.completed", "response.incomplete")
    deltas = "".join(e["delta"] for e in sse.events if e["type"] == "response.output_text.delta")
    assert deltas.strip()
    assert output_text(sse.final) == deltas
    # llama-cpp-python sends no usage chunk in streams (include_usage is ignored).
    assert sse.final["usage"] is None or sse.final["usage"]["output_tokens"] > 0


def test_streaming_matches_non_streaming(client: httpx.Client) -> None:
    # Temperature 0 repeats itself only from the same cache state: llama-cpp-python evaluates a
    # new prompt in one batch but a repeated one from its prefix cache, and the two can pick
    # different tokens. So warm the cache first; then JSON and SSE must carry the same text.
    payload = body("Write a haiku about rain.")
    create(client, payload)
    resource = create(client, payload)
    sse = stream_sse(client, payload)
    check_stream(sse)
    assert output_text(sse.final) == output_text(resource)
    assert sse.final["status"] == resource["status"]


# --- system prompt, developer messages -----------------------------------------------------------


def test_instructions_become_a_system_string(client: httpx.Client) -> None:
    # llama-cpp-python 500s on role "developer" and on array content for system messages;
    # the dialect sends a system message with string content (which the gemma format then drops).
    resource = create(client, body("Hello.", instructions="You are a pirate. Answer like one."))
    assert resource["status"] in ("completed", "incomplete")
    assert resource["instructions"] == "You are a pirate. Answer like one."
    assert output_text(resource).strip()


def test_developer_message_and_instructions_streamed(client: httpx.Client) -> None:
    items = [
        {"role": "developer", "content": [{"type": "input_text", "text": "Be terse."}]},
        {"role": "user", "content": "Hello."},
    ]
    sse = stream_sse(client, body(items, instructions="You are helpful."))
    check_stream(sse)
    assert sse.types[-1] in ("response.completed", "response.incomplete")


# --- state ------------------------------------------------------------------------------------------


def test_multi_turn_previous_response_id(client: httpx.Client) -> None:
    first = create(client, body("My name is Ada.", max_output_tokens=8))
    second = create(client, body("What is my name?", max_output_tokens=8, previous_response_id=first["id"]))
    assert second["previous_response_id"] == first["id"]
    assert output_text(second).strip()
    # The history (first input + first answer) was sent upstream again as string turns.
    alone = create(client, body("What is my name?", max_output_tokens=8))
    assert second["usage"]["input_tokens"] >= alone["usage"]["input_tokens"] + first["usage"]["input_tokens"]


def test_multi_turn_streamed_continuation(client: httpx.Client) -> None:
    first = stream_sse(client, body("My name is Ada.", max_output_tokens=8))
    check_stream(first)
    second = stream_sse(
        client, body("What is my name?", max_output_tokens=8, previous_response_id=first.final["id"])
    )
    check_stream(second)
    assert second.final["previous_response_id"] == first.final["id"]


def test_unknown_previous_response_id_is_404(client: httpx.Client) -> None:
    resp = client.post("/responses", json=body("Hi.", previous_response_id="resp_does_not_exist"))
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "previous_response_not_found"


# --- tools -----------------------------------------------------------------------------------------


FORCED = {"type": "function", "name": "get_weather"}


def test_forced_tool_call(client: httpx.Client) -> None:
    resource = create(
        client,
        body("Call get_weather for Paris.", tools=[WEATHER_TOOL], tool_choice=FORCED, max_output_tokens=60),
    )
    calls = [item for item in resource["output"] if item["type"] == "function_call"]
    assert calls, resource["output"]
    call = calls[0]
    assert call["name"] == "get_weather"
    assert call["call_id"]
    assert json.loads(call["arguments"])["location"]
    assert resource["status"] == "completed"
    assert resource["tool_choice"] == FORCED


def test_forced_tool_call_streamed(client: httpx.Client) -> None:
    sse = stream_sse(
        client,
        body("Call get_weather for Paris.", tools=[WEATHER_TOOL], tool_choice=FORCED, max_output_tokens=60),
    )
    check_stream(sse)
    done = [e["item"] for e in sse.events if e["type"] == "response.output_item.done"]
    assert [item["type"] for item in done] == ["function_call"]
    assert done[0]["name"] == "get_weather"
    assert json.loads(done[0]["arguments"])["location"]
    assert sse.types[-1] == "response.completed"


# --- images on a text-only upstream --------------------------------------------------------------


def _image_input(text: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [{"type": "input_text", "text": text}, {"type": "input_image", "image_url": PNG}],
        }
    ]


def test_image_dropped_with_a_diagnostic(client: httpx.Client) -> None:
    """``llamacpp-python`` lists only text: the image is dropped and reported, the text kept."""
    text = "What is in this image?"
    resp = client.post("/responses", json=body(_image_input(text), max_output_tokens=4))
    assert resp.status_code == 200, resp.text
    validate_resource(resp.content)
    assert "unsupported_content:input[0].content[1]" in resp.headers.get("x-shim-diagnostics", "")
    without_image = create(client, body(text, max_output_tokens=4))
    assert resp.json()["usage"]["input_tokens"] == without_image["usage"]["input_tokens"]


def test_image_under_the_generic_llamacpp_dialect(shim_llamacpp: ShimServer, client: httpx.Client) -> None:
    """``llamacpp`` lists images, so text + image go up as an array: llama-cpp-python answers 200,
    ignores the image (no projector) and drops the whole array, text included."""
    text = "What is in this image? Describe every detail of it, please."
    with httpx.Client(base_url=shim_llamacpp.base_url, timeout=120) as generic:
        resp = generic.post("/responses", json=body(_image_input(text), max_output_tokens=4))
        assert resp.status_code == 200, resp.text
        validate_resource(resp.content)
        assert "x-shim-diagnostics" not in resp.headers
        lost = resp.json()["usage"]["input_tokens"]
    kept = create(client, body(text, max_output_tokens=4))["usage"]["input_tokens"]
    empty = create(client, body(" ", max_output_tokens=4))["usage"]["input_tokens"]
    assert lost < kept
    assert lost <= empty


# --- token budget ----------------------------------------------------------------------------------


def test_max_output_tokens_8_is_incomplete(client: httpx.Client) -> None:
    resource = create(client, body("Tell me a story.", max_output_tokens=8))
    assert resource["status"] == "incomplete"
    assert resource["incomplete_details"] == {"reason": "max_output_tokens"}
    assert resource["usage"]["output_tokens"] == 8
    assert resource["output"][-1]["status"] == "incomplete"


def test_max_output_tokens_8_streamed(client: httpx.Client) -> None:
    sse = stream_sse(client, body("Tell me a story.", max_output_tokens=8))
    check_stream(sse)
    assert sse.types[-1] == "response.incomplete"
    assert sse.final["incomplete_details"] == {"reason": "max_output_tokens"}


# --- context overflow -------------------------------------------------------------------------------

# More than the server's n_ctx (4096) tokens.
TOO_LONG = "word " * 5000


def test_context_overflow_is_a_400(client: httpx.Client) -> None:
    resp = client.post("/responses", json=body(TOO_LONG, max_output_tokens=8))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"


def test_context_overflow_streamed_fails_the_response(client: httpx.Client) -> None:
    # llama-cpp-python answers 200 + text/event-stream and then closes with zero bytes: the shim
    # must not call that completed.
    sse = stream_sse(client, body(TOO_LONG, max_output_tokens=8))
    check_stream(sse)
    assert sse.types[-2:] == ["error", "response.failed"]
    assert sse.final["error"]["code"]


# --- the openai SDK ---------------------------------------------------------------------------------


STREAM_EVENT = pydantic.TypeAdapter(Annotated[ResponseStreamEvent, pydantic.Field(discriminator="type")])


@pytest.fixture
def sdk(shim: ShimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=shim.base_url, api_key="unused", max_retries=0, timeout=120)


def test_sdk_create(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model=MODEL, input="Say hello.", temperature=0, max_output_tokens=16)
    assert response.status in ("completed", "incomplete")
    assert response.output_text.strip()
    assert response.usage is not None and response.usage.output_tokens <= 16


def test_sdk_create_stream_events_validate(sdk: openai.OpenAI) -> None:
    stream = sdk.responses.create(
        model=MODEL, input="Count to three.", temperature=0, max_output_tokens=16, stream=True
    )
    types = []
    for event in stream:
        # The SDK builds events without validating them: validate each one strictly.
        STREAM_EVENT.validate_python(event.to_dict(mode="json"))
        types.append(event.type)
    assert types[0] == "response.created"
    assert types[-1] == "response.incomplete"
    assert "response.output_text.delta" in types


def test_sdk_stream_helper_completed_tool_call(sdk: openai.OpenAI) -> None:
    # Only a forced tool call makes this base model finish: get_final_response() needs completed.
    with sdk.responses.stream(
        model=MODEL,
        input="Call get_weather for Paris.",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
        temperature=0,
        max_output_tokens=60,
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()
    assert events[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in events
    assert final.status == "completed"
    call = final.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments)["location"]


def test_sdk_stream_helper_incomplete_text(sdk: openai.OpenAI) -> None:
    # Text runs into the budget: the helper accepts response.incomplete, but
    # get_final_response() only returns a completed response.
    with sdk.responses.stream(model=MODEL, input="Say hello.", temperature=0, max_output_tokens=16) as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    assert text.strip()

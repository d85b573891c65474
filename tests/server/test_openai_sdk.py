"""The real ``openai`` SDK against the app, in-process.

openai 3.x talks through the ``httpx2`` package, so its ``http_client`` must be an
``httpx2.AsyncClient``; ``httpx2.ASGITransport`` drives the Litestar app without a socket.
``responses.create(stream=True)`` validates nothing, so each event is re-validated with pydantic
against the SDK's own ``ResponseStreamEvent`` union.
"""

from __future__ import annotations

import json
import typing
from typing import Annotated, Any

import pytest

from tests.server.harness import Shim

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2", reason="openai 3.x uses httpx2 for its http_client")

from openai.types.responses import Response, ResponseStreamEvent  # noqa: E402
from pydantic import Field, TypeAdapter  # noqa: E402

from tests.support import scripted_chat  # noqa: E402

EVENTS: TypeAdapter[Any] = TypeAdapter(
    Annotated[typing.get_args(ResponseStreamEvent)[0], Field(discriminator="type")]
)
RESPONSE: TypeAdapter[Response] = TypeAdapter(Response)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


def strict(event: Any) -> Any:
    """Validate what the SDK received (it builds events without validation) against its own types."""
    return EVENTS.validate_python(event.model_dump(mode="json", exclude_unset=True, warnings=False))


async def test_create(sdk: Any, shim: Shim) -> None:
    response = await sdk.responses.create(model="m", input="Hello", instructions="Be terse.")
    RESPONSE.validate_python(response.model_dump(mode="json", exclude_unset=True, warnings=False))
    assert response.status == "completed"
    assert response.output_text == f"{scripted_chat.ANSWER} You said: Hello"
    assert response.usage is not None and response.usage.total_tokens > 0
    assert shim.upstream.requests[0].headers["authorization"] == "Bearer sk-test"


async def test_function_tool_round_trip(sdk: Any, shim: Shim) -> None:
    first = await sdk.responses.create(model="m", input="Weather in Paris?", tools=[WEATHER_TOOL])
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "San Francisco"}
    second = await sdk.responses.create(
        model="m",
        previous_response_id=first.id,
        tools=[WEATHER_TOOL],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}],
    )
    assert second.status == "completed"
    assert second.previous_response_id == first.id
    assert second.output_text.startswith(scripted_chat.ANSWER)
    assert [m["role"] for m in shim.upstream.bodies[-1]["messages"]] == ["user", "assistant", "tool"]


async def test_function_tool_round_trip_without_store(sdk: Any) -> None:
    """A stateless client (Codex-style) sends the call back itself, with ids and statuses."""
    first = await sdk.responses.create(model="m", input="Weather?", tools=[WEATHER_TOOL], store=False)
    (call,) = first.output
    second = await sdk.responses.create(
        model="m",
        store=False,
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": "Weather?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
        ],
    )
    assert second.status == "completed"
    assert second.output[0].type == "message"


@pytest.mark.parametrize(
    ("kwargs", "types", "status"),
    [
        pytest.param({"input": "Hello"}, ["message"], "completed", id="text"),
        pytest.param(
            {"input": "Weather?", "tools": [WEATHER_TOOL]}, ["function_call"], "completed", id="tool"
        ),
        pytest.param({"input": "Hello", "max_output_tokens": 3}, ["message"], "incomplete", id="budget"),
    ],
)
async def test_create_stream_events_validate(
    sdk: Any, kwargs: dict[str, Any], types: list[str], status: str
) -> None:
    stream = await sdk.responses.create(model="m", stream=True, **kwargs)
    events = [strict(event) async for event in stream]
    assert events[0].type == "response.created"
    assert events[-1].type == f"response.{status}"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.status == status
    assert [item.type for item in final.output] == types


@pytest.mark.parametrize(
    ("kwargs", "types"),
    [
        pytest.param({"input": "Hello"}, ["message"], id="text"),
        pytest.param({"input": "Weather?", "tools": [WEATHER_TOOL]}, ["function_call"], id="tool"),
    ],
)
async def test_stream_helper(sdk: Any, kwargs: dict[str, Any], types: list[str]) -> None:
    async with sdk.responses.stream(model="m", **kwargs) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.status == "completed"
    assert [item.type for item in final.output] == types
    if types == ["message"]:
        assert final.output_text == f"{scripted_chat.ANSWER} You said: Hello"
        assert "response.output_text.delta" in kinds
    else:
        assert "response.function_call_arguments.done" in kinds
        assert json.loads(final.output[0].arguments) == {"city": "San Francisco"}


@pytest.mark.parametrize(
    ("kwargs", "error", "status", "code"),
    [
        pytest.param(
            {"input": "hi", "previous_response_id": "resp_missing"},
            "NotFoundError",
            404,
            "previous_response_not_found",
            id="previous-not-found",
        ),
        pytest.param(
            {"input": "hi", "temperature": "hot"}, "BadRequestError", 400, "invalid_value", id="bad-type"
        ),
        pytest.param({"input": []}, "BadRequestError", 400, "missing_input", id="no-input"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_errors_surface_as_sdk_exceptions(
    sdk: Any, kwargs: dict[str, Any], error: str, status: int, code: str, stream: bool
) -> None:
    with pytest.raises(getattr(openai, error)) as raised:
        await sdk.responses.create(model="m", stream=stream, **kwargs)
    assert raised.value.status_code == status
    assert raised.value.code == code


GRAMMAR_TOOL: dict[str, Any] = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" /(.|\\n)*/'},
}


async def test_custom_tool_call_streams_and_round_trips(sdk: Any, shim: Shim) -> None:
    """A ``custom`` tool (Codex's ``apply_patch``), streamed: every event validates against the
    SDK's own types, the call arrives as ``custom_tool_call`` with its input events, the stream
    helper accumulates the same input, and the output sent back reaches the upstream."""
    stream = await sdk.responses.create(model="m", stream=True, input="Patch it.", tools=[GRAMMAR_TOOL])
    events = [strict(event) async for event in stream]
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    (call,) = events[-1].response.output
    assert call.type == "custom_tool_call" and call.name == "apply_patch"
    assert call.input == "San Francisco" == events[4].input  # the scripted model's sample text
    sent = shim.upstream.bodies[-1]["tools"][0]["function"]
    assert sent["name"] == "apply_patch" and "lark grammar" in sent["description"]

    async with sdk.responses.stream(model="m", input="Patch it.", tools=[GRAMMAR_TOOL]) as helper:
        [event async for event in helper]
        final = await helper.get_final_response()
    assert [(i.type, i.input) for i in final.output] == [("custom_tool_call", "San Francisco")]

    answer = await sdk.responses.create(
        model="m",
        tools=[GRAMMAR_TOOL],
        input=[
            {"role": "user", "content": "Patch it."},
            call.model_dump(exclude_none=True),
            {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Patched 1 file."},
        ],
    )
    assert answer.output_text == f"{scripted_chat.ANSWER} You said: Patched 1 file."
    replayed = shim.upstream.bodies[-1]["messages"]
    assert replayed[-2]["tool_calls"][0]["function"] == {
        "name": "apply_patch",
        "arguments": json.dumps({"input": "San Francisco"}),
    }


async def test_namespace_function_call(sdk: Any) -> None:
    """A ``namespace`` tool's member comes back as a ``function_call`` with the namespace and
    its bare name, as the SDK's types have it."""
    namespace = {
        "type": "namespace",
        "name": "mcp__weather",
        "description": "Weather.",
        "tools": [WEATHER_TOOL],
    }
    response = await sdk.responses.create(model="m", input="Weather?", tools=[namespace])
    RESPONSE.validate_python(response.model_dump(mode="json", exclude_unset=True, warnings=False))
    (call,) = response.output
    assert (call.type, call.namespace, call.name) == ("function_call", "mcp__weather", "get_weather")

"""``RoundMerger`` (shim/translate/hosted_events.py), sans-IO: the ordinary writer's events of
several rounds made into one response."""

from __future__ import annotations

from typing import Any

import msgspec

from shim.core.deltas import Delta, FinishDelta, TextDelta, ToolCallArgsDelta, ToolCallStartDelta, UsageDelta
from shim.ids import CountingIds, fixed_clock
from shim.translate.hosted_events import RoundMerger
from shim.translate.responses_writer import ResponsesStreamWriter
from shim.wire import responses as r

IDS = CountingIds()
DEMO = r.NamespaceTool(
    name="demo", tools=[r.FunctionToolParam(name="magic_word", parameters={"type": "object"})]
)
WEATHER = r.FunctionTool(name="get_weather", description=None, parameters={"type": "object"}, strict=None)
ROUND = r.ResponseResource(id="resp_1", created_at=1, model="m", tools=[DEMO, WEATHER])
CLIENT = msgspec.structs.replace(ROUND, tools=[WEATHER, r.McpTool(server_label="demo")])


def kind(namespace: str, name: str) -> Any:
    return "mcp" if namespace == "demo" else None


def round_events(deltas: list[Delta]) -> list[r.StreamingEvent]:
    writer = ResponsesStreamWriter(ROUND, ids=IDS, clock=fixed_clock())
    return writer.start() + writer.feed_all(deltas) + writer.finish()


def wire(events: list[r.StreamingEvent]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(e) for e in events]


def test_a_hosted_and_a_client_call_in_one_round_then_the_end() -> None:
    merger = RoundMerger(CLIENT, ids=IDS, clock=fixed_clock(), classify=kind)
    events = merger.start()
    merger.begin_round()
    events += merger.feed(
        round_events(
            [
                ToolCallStartDelta(0, "call_a", "demo__magic_word"),
                ToolCallArgsDelta(0, '{"word":"x"}'),
                ToolCallStartDelta(1, "call_b", "get_weather"),
                ToolCallArgsDelta(1, '{"city":"y"}'),
                UsageDelta(input_tokens=10, output_tokens=3),
                FinishDelta("tool_calls"),
            ]
        )
    )
    assert not merger.finished and merger.client_calls
    [call] = merger.pending
    events += merger.call_started(call)
    events += merger.call_finished(call, "magic-x-42", None)
    events += merger.close()
    data = wire(events)
    assert [e["sequence_number"] for e in data] == list(range(len(data)))
    assert [e["type"] for e in data] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # mcp_call, in progress
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.output_item.added",  # the client's function_call, held while the first was open
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.output_item.done",  # mcp_call with its output
        "response.completed",
    ]
    final = data[-1]["response"]
    assert [(i["type"], i.get("status")) for i in final["output"]] == [
        ("mcp_call", "completed"),
        ("function_call", "completed"),
    ]
    assert final["output"][0]["output"] == "magic-x-42" and final["tools"][1]["type"] == "mcp"
    assert final["usage"]["input_tokens"] == 10


def test_two_rounds_are_one_response() -> None:
    merger = RoundMerger(CLIENT, ids=IDS, clock=fixed_clock(), classify=kind)
    events = merger.start()
    merger.begin_round()
    events += merger.feed(
        round_events(
            [ToolCallStartDelta(0, "c", "demo__magic_word"), UsageDelta(5, 1), FinishDelta("tool_calls")]
        )
    )
    [call] = merger.pending
    events += merger.call_started(call) + merger.call_finished(
        call, None, {"type": "mcp_protocol_error", "code": 1, "message": "no"}
    )
    merger.begin_round()
    events += merger.feed(round_events([TextDelta("done"), UsageDelta(7, 2), FinishDelta("stop")]))
    assert merger.finished
    data = wire(events)
    assert [e["sequence_number"] for e in data] == list(range(len(data)))
    assert [e["type"] for e in data].count("response.created") == 1
    assert [e["output_index"] for e in data if e["type"] == "response.output_item.added"] == [0, 1]
    final = data[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["mcp_call", "message"]
    assert final["output"][0]["status"] == "failed"
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == (12, 3)

"""The oracles themselves (tests/checks/oracle.py): tool items the spec's types let through
are still checked against openai-python's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.checks.oracle import validate_event, validate_resource


def _call(**fields: Any) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "magic_word",
        "arguments": "{}",
        "status": "completed",
        **fields,
    }


def _event(item: dict[str, Any]) -> bytes:
    return json.dumps(
        {"type": "response.output_item.done", "sequence_number": 3, "output_index": 0, "item": item}
    ).encode()


@pytest.mark.parametrize(
    ("item", "valid"),
    [
        pytest.param(_call(), True, id="function-call"),
        pytest.param(_call(namespace="mcp__demo"), True, id="namespaced"),
        pytest.param(_call(namespace=5), False, id="namespace-not-a-string"),
        pytest.param(_call(status="finished"), False, id="bad-status"),
    ],
)
def test_a_function_call_event_is_checked_by_both(item: dict[str, Any], valid: bool) -> None:
    if valid:
        validate_event(_event(item))
    else:
        with pytest.raises(ValidationError):
            validate_event(_event(item))


def test_a_custom_tool_call_input_event_needs_its_fields() -> None:
    event = {"type": "response.custom_tool_call_input.delta", "sequence_number": 4, "output_index": 0}
    with pytest.raises(ValidationError):
        validate_event(json.dumps(event).encode())
    validate_event(json.dumps({**event, "item_id": "ctc_1", "delta": "x"}).encode())


# A resource the shim produced (a forced function call), as the fixture test snapshot holds it.
RESOURCE = (
    Path(__file__).parent / "__snapshots__/test_fixtures/test_completion[llamacpp.tool_call_forced].json"
)


def test_a_resource_output_item_is_checked_by_both() -> None:
    resource = json.loads(RESOURCE.read_text())
    (call,) = [item for item in resource["output"] if item["type"] == "function_call"]
    validate_resource(json.dumps(resource).encode())
    call["namespace"] = 5
    with pytest.raises(ValidationError):
        validate_resource(json.dumps(resource).encode())

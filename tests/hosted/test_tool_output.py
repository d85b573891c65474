"""The shim's check of a tool's structured output (``problem``, used by its own client and by the
SDK session of the SSE fallback) says what the SDK's ``ClientSession`` says — the same outcome and
message for each case — with its validator made once per schema."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.types import CallToolResult, TextContent

from shim.hosted.tool_output import _validator, checked_class, problem

STRING = {"type": "object", "properties": {"result": {"type": "string"}}, "required": ["result"]}
REF = {"type": "object", "$defs": {"n": {"type": "integer"}}, "properties": {"n": {"$ref": "#/$defs/n"}}}

CASES = [
    ("valid", STRING, {"result": "magic"}),
    ("wrong type", STRING, {"result": 42}),
    ("missing field", STRING, {}),
    ("two errors", {**STRING, "additionalProperties": False}, {"result": 1, "extra": True}),
    ("no structured content", STRING, None),
    ("no schema", None, {"anything": 1}),
    ("a local $ref", REF, {"n": 1}),
    ("a local $ref, wrong", REF, {"n": "x"}),
    ("a $ref that does not resolve", {"properties": {"n": {"$ref": "#/$defs/missing"}}}, {"n": 1}),
    ("a remote $ref", {"properties": {"n": {"$ref": "https://example.test/n.json"}}}, {"n": 1}),
    ("a bad schema", {"type": "no-such-type"}, {"n": 1}),
]


async def _outcome(cls: type[ClientSession], schema: Any, content: Any, listed: bool = True) -> str:
    send, receive = anyio.create_memory_object_stream[Any](1)
    session = cls(receive, send)
    if listed:
        session._tool_output_schemas = {"t": schema}
    result = CallToolResult(content=[TextContent(type="text", text="x")], structuredContent=content)
    try:
        await session._validate_tool_result("t", result)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        send.close()
        receive.close()
    return "ok"


def _own(schema: Any, content: Any) -> str:
    """The outcome as the own client (``streamable.StreamableClient.call_tool``) reports it."""
    found = problem("t", True, schema, content)
    return "ok" if found is None else f"RuntimeError: {found}"


@pytest.mark.parametrize(("case", "schema", "content"), CASES, ids=[c[0] for c in CASES])
async def test_same_outcome_as_the_sdk(case: str, schema: Any, content: Any) -> None:
    expected = await _outcome(ClientSession, schema, content)
    assert await _outcome(checked_class(), schema, content) == expected
    assert await _outcome(checked_class(), schema, content) == expected  # a cached validator too
    assert _own(schema, content) == expected
    assert (expected == "ok") == (case in ("valid", "no schema", "a local $ref"))


def test_an_unlisted_tool_is_not_checked(caplog: pytest.LogCaptureFixture) -> None:
    assert problem("t", False, None, {"result": 1}) is None
    assert "Tool t not listed by server" in caplog.text


async def test_the_validator_is_made_once_per_schema() -> None:
    _validator.cache_clear()
    for _ in range(5):
        assert await _outcome(checked_class(), STRING, {"result": "a"}) == "ok"
        assert _own(STRING, {"result": "a"}) == "ok"
    assert _validator.cache_info().misses == 1 and _validator.cache_info().hits == 9

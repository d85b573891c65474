"""The sans-IO rules of hosted tools (shim/translate/hosted_tools.py), as tables."""

from __future__ import annotations

from typing import Any

import pytest

from shim.translate.hosted_tools import model_history, needs_approval, offered
from shim.wire import responses as r

READ = r.McpToolInfo(name="read", input_schema={}, annotations={"readOnlyHint": True})
WRITE = r.McpToolInfo(name="write", input_schema={})
TOOLS = [READ, WRITE]


@pytest.mark.parametrize(
    ("allowed", "names"),
    [
        (None, ["read", "write"]),
        (["write"], ["write"]),
        ([], []),
        ({"tool_names": ["read"]}, ["read"]),
        ({"read_only": True}, ["read"]),
        ({"read_only": False}, ["write"]),
        ({"tool_names": ["write"], "read_only": True}, []),
        ({}, []),
    ],
)
def test_allowed_tools(allowed: Any, names: list[str]) -> None:
    raw = {} if allowed is None else {"allowed_tools": allowed}
    assert [t.name for t in offered(raw, TOOLS)] == names


@pytest.mark.parametrize(
    ("rule", "tool", "needed"),
    [
        (None, WRITE, True),  # OpenAI's default: always
        ("always", READ, True),
        ("never", WRITE, False),
        ({"never": {"tool_names": ["read"]}}, READ, False),
        ({"never": {"tool_names": ["read"]}}, WRITE, True),
        ({"never": {"read_only": True}}, READ, False),
        ({"always": {"tool_names": ["write"]}}, READ, True),  # in neither filter: approval
    ],
)
def test_require_approval(rule: Any, tool: r.McpToolInfo, needed: bool) -> None:
    raw = {} if rule is None else {"require_approval": rule}
    assert needs_approval(raw, tool, tool.name) is needed


def hosted(**item: Any) -> r.HostedItemParam:
    return r.HostedItemParam(item=item)


def test_history_reads_back_as_calls_and_outputs() -> None:
    items: list[r.ItemParam] = [
        r.MessageItemParam(role="user", content="hi"),
        hosted(type="mcp_list_tools", id="l1", server_label="demo", tools=[]),
        hosted(type="mcp_call", id="c1", server_label="demo", name="read", arguments="{}", output="42"),
        hosted(
            type="mcp_call",
            id="c2",
            server_label="demo",
            name="write",
            arguments="{}",
            output=None,
            error={"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": "boom"}]},
        ),
        hosted(type="mcp_approval_request", id="a1", server_label="demo", name="write", arguments="{}"),
        hosted(type="mcp_approval_response", approval_request_id="a1", approve=False, reason="no"),
        hosted(type="mcp_approval_request", id="a2", server_label="demo", name="write", arguments="{}"),
        hosted(type="mcp_call", id="c3", server_label="other", name="x", arguments="{}", output="kept"),
        hosted(
            type="web_search_call",
            id="w1",
            action={"type": "search", "query": "q", "sources": [{"type": "url", "url": "https://a.test"}]},
        ),
    ]
    out = model_history(items, {"demo"}, web=True)
    shape = [(type(i).__name__, getattr(i, "name", None), getattr(i, "output", None)) for i in out]
    assert shape == [
        ("MessageItemParam", None, None),
        ("FunctionCallItemParam", "read", None),
        ("FunctionCallOutputItemParam", None, "42"),
        ("FunctionCallItemParam", "write", None),
        ("FunctionCallOutputItemParam", None, "Error: boom"),
        ("FunctionCallItemParam", "write", None),  # the declined request: the model is told
        ("FunctionCallOutputItemParam", None, "The user declined this tool call. Reason: no"),
        ("HostedItemParam", None, None),  # another server's call: left to the generic path
        ("FunctionCallItemParam", "search", None),
        ("FunctionCallOutputItemParam", None, "Searched the web. Sources: https://a.test"),
    ]
    assert {i.namespace for i in out if isinstance(i, r.FunctionCallItemParam)} == {"demo", "web_search"}

"""The lowering table (``shim.translate.tools``): names, tool choices, raising, refused tools."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest

from shim.core.diagnostics import Diagnostics
from shim.errors import InvalidRequest
from shim.translate.tools import (
    MAX_NAME,
    Lowered,
    client_tools,
    custom_input,
    lower_tool_choice,
    lower_tools,
    raise_call,
)
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import validation_param


def _fn(name: str) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}


TOOLS: list[dict[str, Any]] = [
    _fn("exec_command"),
    {
        "type": "namespace",
        "name": "mcp__demo",
        "description": "Demo server.",
        "tools": [_fn("lookup"), _fn("echo")],
    },
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "",
        "tools": [_fn("spawn_agent"), {"type": "custom", "name": "send_input"}],
    },
    {
        "type": "custom",
        "name": "apply_patch",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
    },
    {"type": "apply_patch"},
    {"type": "shell", "environment": {"type": "local"}},
    {"type": "local_shell"},
]


def _table(tools: list[dict[str, Any]] = TOOLS) -> Any:
    return lower_tools(client_tools(tools, Diagnostics()))


def test_every_client_tool_is_offered_as_one_function() -> None:
    table = _table()
    assert [t.function.name for t in table.functions] == [
        "exec_command",
        "mcp__demo__lookup",
        "mcp__demo__echo",
        "multi_agent_v1__spawn_agent",
        "multi_agent_v1__send_input",
        "apply_patch",
        "apply_patch_535d3ffc",  # the built-in apply_patch: the custom tool took the name first
        "shell",
        "local_shell",
    ]
    assert table.lowered("multi_agent_v1__send_input") == Lowered(
        "custom", "multi_agent_v1__send_input", "send_input", "multi_agent_v1"
    )
    assert table.lowered("exec_command") == Lowered("function", "exec_command", "exec_command")
    grammar = table.functions[5].function
    assert grammar.parameters["required"] == ["input"] and "start: /.+/" in (grammar.description or "")


def test_names_are_deterministic_and_fit() -> None:
    long_ns = "mcp__" + "x" * 70
    tools = [
        _fn("mcp__web__fetch"),
        {"type": "namespace", "name": "mcp__web", "tools": [_fn("fetch")]},
        {"type": "namespace", "name": long_ns, "tools": [_fn("read.file"), _fn("y" * 80)]},
    ]
    names = [t.function.name for t in _table(tools).functions]
    assert names == [t.function.name for t in _table(tools).functions]
    assert names[0] == "mcp__web__fetch" and names[1].startswith("mcp__web__fetch_")
    assert re.fullmatch(r"mcp__x+__read_file_[0-9a-f]{8}", names[2]), names[2]
    assert re.fullmatch(r"y{55}_[0-9a-f]{8}", names[3]), names[3]  # the member's name beats its namespace
    assert all(len(n) <= MAX_NAME and n.replace("_", "").replace("-", "").isalnum() for n in names)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("choice", "chat_choice", "offered"),
    [
        ("auto", "auto", None),
        ({"type": "function", "name": "exec_command"}, "exec_command", None),
        ({"type": "function", "name": "lookup"}, "mcp__demo__lookup", None),  # a bare member name
        ({"type": "function", "name": "mcp__demo__echo"}, "mcp__demo__echo", None),  # the lowered name
        ({"type": "custom", "name": "apply_patch"}, "apply_patch", None),
        ({"type": "custom", "name": "send_input"}, "multi_agent_v1__send_input", None),
        ({"type": "apply_patch"}, "apply_patch_535d3ffc", None),
        ({"type": "shell"}, "shell", None),
        (
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [
                    {"type": "function", "name": "mcp__demo"},  # a whole namespace
                    {"type": "custom", "name": "apply_patch"},
                    {"type": "shell"},
                ],
            },
            "required",
            ["mcp__demo__lookup", "mcp__demo__echo", "apply_patch", "shell"],
        ),
    ],
)
def test_tool_choice_forms(choice: Any, chat_choice: str, offered: list[str] | None) -> None:
    table = _table()
    typed = msgspec.convert(choice, r.ToolChoice)
    diags = Diagnostics()
    got, tools = lower_tool_choice(typed, table, diags)
    if isinstance(got, c.ChatCompletionNamedToolChoiceParam):
        got = got.function.name
    assert got == chat_choice and not diags.items
    names = [t.function.name for t in tools]
    assert names == (offered if offered is not None else [t.function.name for t in table.functions])


def test_a_choice_naming_no_offered_tool_is_reported() -> None:
    diags = Diagnostics()
    table = _table([_fn("f")])
    assert lower_tool_choice(r.SpecificShellParam(), table, diags)[0] is None
    assert lower_tool_choice(r.SpecificMcpParam(server_label="s"), table, diags)[0] is None
    assert [d.kind for d in diags.items] == ["unsupported_tool", "unsupported_tool"]


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "web_search"}, "tools[0]"),
        ({"type": "computer", "display_width": 1, "display_height": 1, "environment": "linux"}, "tools[0]"),
        ({"type": "mcp", "server_label": "s", "server_url": "http://x"}, "tools[0]"),
        ({"type": "shell", "environment": {"type": "container_auto"}}, "tools[0].environment"),
    ],
)
def test_tools_that_cannot_be_lowered_stay_a_diagnostic(tool: dict[str, Any], param: str) -> None:
    diags = Diagnostics()
    assert client_tools([tool], diags) == []
    assert [(d.kind, d.param) for d in diags.items] == [("unsupported_tool", param)]


def test_a_malformed_client_tool_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as info:
        client_tools([{"type": "namespace", "name": "n", "tools": [{"type": "function"}]}], Diagnostics())
    assert info.value.param == "tools[0].tools[0].name"


_MALFORMED_OR_NOT = [
    _fn("f"),
    {"type": "function", "name": "f", "strict": True, "parameters": {"type": "object"}, "extra": 1},
    {"type": "function"},
    {"type": "function", "name": 3},
    {"type": "function", "name": "f", "parameters": []},
    {"type": "custom", "name": "c", "format": {"type": "grammar", "syntax": "lark", "definition": "x"}},
    {"type": "custom", "name": "c", "format": {"type": "nope"}},
    {"type": "namespace", "name": "n", "description": "d", "tools": [_fn("g")]},
    {"type": "namespace", "name": "n", "tools": [{"type": "function"}]},
    {"type": "namespace", "name": "n", "tools": "no"},
    {"type": "namespace", "name": "n", "description": "d", "tools": [{"type": "shell"}]},
    {"type": "apply_patch"},
    {"type": "shell", "environment": {"type": "local"}},
    {"type": "shell", "environment": 5},
    {"type": "local_shell", "x": None},
]


@pytest.mark.parametrize("tool", _MALFORMED_OR_NOT, ids=range(len(_MALFORMED_OR_NOT)))
def test_a_tool_typed_by_its_tag_is_the_union_s_conversion(tool: dict[str, Any]) -> None:
    """``client_tools`` converts to the tool's class, not the union (issue 18): the same struct,
    or the same 400 (message and param) as converting to the union gives."""
    param = None
    try:
        expected: Any = msgspec.convert(tool, r.ClientToolParam)
    except msgspec.ValidationError as exc:
        expected, sub = str(exc), validation_param(exc)
        param = "tools[0]" + (f".{sub}" if sub else "")
    try:
        got: Any = client_tools([tool], Diagnostics())
    except InvalidRequest as exc:
        assert isinstance(expected, str)
        assert (exc.message, exc.param) == (f"Invalid tool: {expected.split(' - at `', 1)[0]}", param)
        return
    assert got == [expected]


_PATCH = Lowered("apply_patch", "apply_patch", "apply_patch")
_SHELL = Lowered("shell", "shell", "shell")
_LOCAL = Lowered("local_shell", "local_shell", "local_shell")


@pytest.mark.parametrize(
    ("lowered", "arguments", "expected"),
    [
        (_PATCH, '{"type":"delete_file","path":"a"}', {"type": "delete_file", "path": "a"}),
        (
            _PATCH,
            '{"type":"update_file","path":"a","diff":"@@\\n-a\\n+b\\n"}',
            {"type": "update_file", "path": "a", "diff": "@@\n-a\n+b\n"},
        ),
        (_PATCH, '{"type":"create_file","path":"a"}', None),  # no diff to create it from
        (_PATCH, '{"type":"rename_file","path":"a"}', None),
        (_PATCH, "not json", None),
        (_SHELL, '{"commands":"ls"}', {"commands": ["ls"], "timeout_ms": None, "max_output_length": None}),
        (
            _SHELL,
            '{"commands":["ls","pwd"],"max_output_length":100}',
            {"commands": ["ls", "pwd"], "timeout_ms": None, "max_output_length": 100},
        ),
        (_SHELL, '{"commands":[]}', None),
        (
            _LOCAL,
            '{"command":["ls","-l"],"env":{"A":"1","B":2}}',
            {"command": ["ls", "-l"], "env": {"A": "1"}},
        ),
        (_LOCAL, "{}", None),
    ],
)
def test_raise_call(lowered: Lowered, arguments: str, expected: dict[str, Any] | None) -> None:
    item = raise_call(lowered, item_id="i", call_id="c", arguments=arguments, status="completed")
    if expected is None:
        assert item is None
        return
    raw = json.loads(msgspec.json.encode(item))
    body = raw.get("operation") or raw.get("action")
    assert {k: v for k, v in body.items() if k in expected} == expected


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"input":"*** Begin Patch"}', "*** Begin Patch"),
        ('{"patch":"x"}', "x"),  # one string under another key: the model's word for it
        ("plain text the model wrote", "plain text the model wrote"),
        ('{"input": 3}', '{"input": 3}'),
    ],
)
def test_custom_input(arguments: str, expected: str) -> None:
    assert custom_input(arguments) == expected

"""Open Responses request → Chat request, per dialect, in the style of sqlglot's ``validate_all``.

Each row: one Responses request and, per dialect, the exact Chat request we must write (or the
diagnostics we must report). A behaviour is a row; adding one needs no new Python.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.core.diagnostics import Diagnostics
from shim.dialects.registry import get_dialect
from shim.errors import InvalidRequest, UnsupportedParameter
from shim.translate.chat_request import alnum9, to_chat_request
from shim.translate.history import string_input
from shim.wire.chat import encode_chat_request
from shim.wire.responses_decode import decode_create_response_body

USER = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
CHAT_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def translate(
    request: dict[str, Any], dialect: str, stream: bool = False
) -> tuple[dict[str, Any], list[str]]:
    body = decode_create_response_body(json.dumps({"model": "m", **request}).encode())
    diags = Diagnostics("warn")
    req = to_chat_request(
        body, string_input(body.input), model="m", dialect=get_dialect(dialect), diags=diags, stream=stream
    )
    out = json.loads(encode_chat_request(req))
    out.pop("model")
    return out, [f"{d.kind}:{d.param}" for d in diags.items]


ROWS: list[tuple[str, dict[str, Any], dict[str, dict[str, Any]]]] = [
    (
        "string input",
        {"input": "hi"},
        {"openai": {"messages": [USER]}},
    ),
    (
        "instructions become a system message",
        {"input": "hi", "instructions": "be brief"},
        {"openai": {"messages": [{"role": "system", "content": "be brief"}, USER]}},
    ),
    (
        "developer role per dialect",
        {"input": [{"role": "developer", "content": "rules"}, {"role": "user", "content": "hi"}]},
        {
            "openai": {
                "messages": [{"role": "developer", "content": "rules"}, {"role": "user", "content": "hi"}]
            },
            "llamacpp": {
                "messages": [{"role": "system", "content": "rules"}, {"role": "user", "content": "hi"}]
            },
        },
    ),
    (
        "system content arrays flattened where the upstream needs strings",
        {
            "input": [
                {
                    "role": "system",
                    "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
                },
                {"role": "user", "content": "hi"},
            ]
        },
        {
            "openai": {
                "messages": [
                    {
                        "role": "system",
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    },
                    {"role": "user", "content": "hi"},
                ]
            },
            "llamacpp": {
                "messages": [{"role": "system", "content": "a\n\nb"}, {"role": "user", "content": "hi"}]
            },
        },
    ),
    (
        "function calls grouped into one assistant message, outputs as tool messages",
        {
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"x":1}'},
                {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
                {"type": "function_call_output", "call_id": "call_b", "output": "rain"},
            ]
        },
        {
            "openai": {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "type": "function",
                                "id": "call_a",
                                "function": {"name": "get_weather", "arguments": "{}"},
                            },
                            {
                                "type": "function",
                                "id": "call_b",
                                "function": {"name": "get_weather", "arguments": '{"x":1}'},
                            },
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
                    {"role": "tool", "tool_call_id": "call_b", "content": "rain"},
                ]
            },
            "mistral": {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "type": "function",
                                "id": alnum9("call_a"),
                                "function": {"name": "get_weather", "arguments": "{}"},
                            },
                            {
                                "type": "function",
                                "id": alnum9("call_b"),
                                "function": {"name": "get_weather", "arguments": '{"x":1}'},
                            },
                        ],
                    },
                    {"role": "tool", "tool_call_id": alnum9("call_a"), "content": "sunny"},
                    {"role": "tool", "tool_call_id": alnum9("call_b"), "content": "rain"},
                ]
            },
        },
    ),
    (
        "reasoning replayed per dialect",
        {
            "input": [
                {"role": "user", "content": "q"},
                {
                    "type": "reasoning",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "think"}],
                },
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            ]
        },
        {
            "openai": {
                "messages": [
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"type": "function", "id": "c1", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                ]
            },
            "deepseek": {
                "messages": [
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"type": "function", "id": "c1", "function": {"name": "f", "arguments": "{}"}}
                        ],
                        "reasoning_content": "think",
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                ]
            },
            "think-tags": {
                "messages": [
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "content": "<think>think</think>\n\n",
                        "tool_calls": [
                            {"type": "function", "id": "c1", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                ]
            },
        },
    ),
    (
        "max_output_tokens field per dialect",
        {"input": "hi", "max_output_tokens": 7},
        {
            "openai": {"messages": [USER], "max_completion_tokens": 7},
            "llamacpp": {"messages": [USER], "max_tokens": 7},
        },
    ),
    (
        "tools and a forced function",
        {"input": "hi", "tools": [TOOL], "tool_choice": {"type": "function", "name": "get_weather"}},
        {
            "openai": {
                "messages": [USER],
                "tools": [CHAT_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            }
        },
    ),
    (
        "a forced function: an object, or required with only that tool (named_tool_choice)",
        {
            "input": "hi",
            "tools": [TOOL, {"type": "function", "name": "other"}],
            "tool_choice": {"type": "function", "name": "get_weather"},
        },
        {
            "openai": {
                "messages": [USER],
                "tools": [CHAT_TOOL, {"type": "function", "function": {"name": "other"}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
            "llamacpp-server": {"messages": [USER], "tools": [CHAT_TOOL], "tool_choice": "required"},
        },
    ),
    (
        "allowed_tools offers only the allowed tools",
        {
            "input": "hi",
            "tools": [TOOL, {"type": "function", "name": "other"}],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "get_weather"}],
            },
        },
        {"openai": {"messages": [USER], "tools": [CHAT_TOOL], "tool_choice": "required"}},
    ),
    (
        "sampling parameters and ids pass through",
        {
            "input": "hi",
            "temperature": 0.2,
            "top_p": 0.9,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.3,
            "prompt_cache_key": "k",
            "safety_identifier": "s",
            "service_tier": "flex",
        },
        {
            "openai": {
                "messages": [USER],
                "temperature": 0.2,
                "top_p": 0.9,
                "presence_penalty": 0.1,
                "frequency_penalty": 0.3,
                "prompt_cache_key": "k",
                "safety_identifier": "s",
                "service_tier": "flex",
            }
        },
    ),
    (
        "logprobs from top_logprobs",
        {"input": "hi", "top_logprobs": 2},
        {"openai": {"messages": [USER], "logprobs": True, "top_logprobs": 2}},
    ),
    (
        "reasoning effort per dialect",
        {"input": "hi", "reasoning": {"effort": "high"}},
        {
            "openai": {"messages": [USER], "reasoning_effort": "high"},
            "openrouter": {"messages": [USER], "reasoning": {"effort": "high"}},
        },
    ),
    (
        "json_schema text format per dialect",
        {
            "input": "hi",
            "text": {
                "format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}
            },
        },
        {
            "openai": {
                "messages": [USER],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True},
                },
            },
            "llamacpp": {
                "messages": [USER],
                "response_format": {"type": "json_object", "schema": {"type": "object"}},
            },
        },
    ),
]


@pytest.mark.parametrize(
    ("request_body", "dialect", "expected"),
    [(req, d, exp) for name, req, per in ROWS for d, exp in per.items()],
    ids=[f"{name}-{d}" for name, _, per in ROWS for d in per],
)
def test_request_mapping(request_body: dict[str, Any], dialect: str, expected: dict[str, Any]) -> None:
    out, _ = translate(request_body, dialect)
    assert out == expected


def test_streaming_always_asks_for_usage() -> None:
    out, _ = translate({"input": "hi"}, "openai", stream=True)
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


DIAGNOSTIC_ROWS = [
    (
        "web_search tool",
        {"input": "hi", "tools": [{"type": "web_search"}]},
        "openai",
        ["unsupported_tool:tools[0]"],
    ),
    (
        "image to a text-only upstream",
        {
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "data:image/png;base64,AA=="}],
                }
            ]
        },
        "deepseek",
        ["unsupported_content:input[0].content[0]"],
    ),
    (
        "json_schema downgraded",
        {"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}},
        "deepseek",
        ["lossy_value:text.format"],
    ),
    ("max_tool_calls", {"input": "hi", "max_tool_calls": 2}, "openai", ["dropped_param:max_tool_calls"]),
]


@pytest.mark.parametrize(
    ("request_body", "dialect", "expected"),
    [r[1:] for r in DIAGNOSTIC_ROWS],
    ids=[r[0] for r in DIAGNOSTIC_ROWS],
)
def test_diagnostics(request_body: dict[str, Any], dialect: str, expected: list[str]) -> None:
    _, diags = translate(request_body, dialect)
    assert diags == expected


def test_error_policy_refuses_lossy_translation() -> None:
    body = decode_create_response_body(b'{"model":"m","input":"hi","tools":[{"type":"web_search"}]}')
    with pytest.raises(UnsupportedParameter) as info:
        to_chat_request(
            body,
            string_input(body.input),
            model="m",
            dialect=get_dialect("openai"),
            diags=Diagnostics("error"),
            stream=False,
        )
    assert info.value.http_status == 400 and info.value.param == "tools[0]"


def test_unresolved_item_reference_is_a_clear_error() -> None:
    body = decode_create_response_body(b'{"model":"m","input":[{"type":"item_reference","id":"msg_x"}]}')
    with pytest.raises(InvalidRequest) as info:
        to_chat_request(
            body,
            string_input(body.input),
            model="m",
            dialect=get_dialect("openai"),
            diags=Diagnostics(),
            stream=False,
        )
    assert info.value.param == "input[0]"


def test_forced_function_that_is_not_offered_is_a_clear_error() -> None:
    """Under named_tool_choice = "required" the tool list is narrowed to the named function:
    naming one that is not offered would leave nothing to call."""
    raw = {"model": "m", "input": "hi", "tools": [TOOL], "tool_choice": {"type": "function", "name": "nope"}}
    body = decode_create_response_body(json.dumps(raw).encode())
    with pytest.raises(InvalidRequest) as info:
        to_chat_request(
            body,
            string_input(body.input),
            model="m",
            dialect=get_dialect("llamacpp-server"),
            diags=Diagnostics(),
            stream=False,
        )
    assert info.value.http_status == 400 and info.value.param == "tool_choice"


NAMED = {"type": "function", "function": {"name": "get_weather"}}
ALLOWED_AUTO = {
    "type": "allowed_tools",
    "mode": "auto",
    "tools": [{"type": "function", "name": "get_weather"}],
}
ABSENT = "absent"  # the client sent no tool_choice

# (dialect, tools offered, client's tool_choice, Chat stream, Chat tool_choice), for a client
# that streams. `llamacpp-python-functions` cannot stream tools + "auto" (stream_auto_tool_choice)
# and says "auto" when the client gave no choice (explicit_tool_choice); `llamacpp` does neither.
STREAM_ROWS: list[tuple[str, bool, Any, bool, Any]] = [
    ("llamacpp-python-functions", True, "auto", False, "auto"),
    ("llamacpp-python-functions", True, ABSENT, False, "auto"),
    ("llamacpp-python-functions", True, ALLOWED_AUTO, False, "auto"),
    ("llamacpp-python-functions", True, "none", True, "none"),
    ("llamacpp-python-functions", True, "required", True, NAMED),  # required_tool_choice = "named"
    ("llamacpp-python-functions", True, {"type": "function", "name": "get_weather"}, True, NAMED),
    ("llamacpp-python-functions", False, ABSENT, True, None),
    ("llamacpp", True, "auto", True, "auto"),
    ("llamacpp", True, ABSENT, True, None),
    ("llamacpp", True, "none", True, "none"),
    ("llamacpp", False, ABSENT, True, None),
]


@pytest.mark.parametrize(
    ("dialect", "tools", "choice", "streams", "chat_choice"),
    STREAM_ROWS,
    ids=[f"{d}-{'tools' if t else 'no tools'}-{json.dumps(ch)}" for d, t, ch, _, _ in STREAM_ROWS],
)
def test_streaming_and_tool_choice_per_dialect(
    dialect: str, tools: bool, choice: Any, streams: bool, chat_choice: Any
) -> None:
    request: dict[str, Any] = {"input": "hi"}
    if tools:
        request["tools"] = [TOOL]
    if choice != ABSENT:
        request["tool_choice"] = choice
    out, diags = translate(request, dialect, stream=True)
    assert (out.get("stream"), out.get("tool_choice")) == ((True if streams else None), chat_choice)
    # Asked for usage exactly when streaming; nothing half-set on an unstreamed request.
    assert ("stream_options" in out) == streams
    assert diags == []


@pytest.mark.parametrize("dialect", ["llamacpp", "llamacpp-python-functions"])
def test_unstreamed_client_never_streams(dialect: str) -> None:
    out, _ = translate({"input": "hi", "tools": [TOOL], "tool_choice": "none"}, dialect, stream=False)
    assert "stream" not in out and "stream_options" not in out


def test_required_among_several_tools_is_refused_where_the_upstream_cannot_say_it() -> None:
    """``required_tool_choice = "named"`` (chatml-function-calling answers "required" with HTTP
    500): one function is named instead (fixture tool_call_required); several cannot be."""
    other = {**TOOL, "name": "get_time"}
    raw = {"model": "m", "input": "hi", "tools": [TOOL, other], "tool_choice": "required"}
    body = decode_create_response_body(json.dumps(raw).encode())
    with pytest.raises(UnsupportedParameter) as info:
        to_chat_request(
            body,
            string_input(body.input),
            model="m",
            dialect=get_dialect("llamacpp-python-functions"),
            diags=Diagnostics(),
            stream=False,
        )
    assert info.value.param == "tool_choice"

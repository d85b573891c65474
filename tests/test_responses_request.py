"""Chat request → Open Responses request: one row per field and form (sqlglot ``validate_all`` style).

Each row gives the Chat fields that differ from a one-message base request, the Open Responses
fields expected on top of the base body, and the diagnostics expected as ``(kind, param)``.
Bodies are compared as the upstream receives them (``encode_create_response_body``: no nulls).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.core.diagnostics import Diagnostics
from shim.errors import InvalidRequest, UnsupportedParameter
from shim.translate.responses_request import encode_create_response_body, to_responses_request
from shim.wire import responses as r
from shim.wire.chat import decode_chat_request
from shim.wire.responses_decode import decode_create_response_body

HI = {"role": "user", "content": "Hi"}
HI_ITEM = {"type": "message", "role": "user", "content": "Hi"}
PARAMS = {"type": "object", "properties": {"city": {"type": "string", "default": None}}}
WEATHER = {"type": "function", "function": {"name": "weather", "description": "d", "parameters": PARAMS}}
WEATHER_TOOL = {"type": "function", "name": "weather", "description": "d", "parameters": PARAMS}
CUSTOM = {"type": "custom", "custom": {"name": "sql"}}
CUSTOM_TOOL = {"type": "custom", "name": "sql"}


def _call(call_id: str, name: str = "weather", args: str = "{}") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def _fc(call_id: str, name: str = "weather", args: str = "{}") -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": args}


def _out(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _assistant(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": list(content)}


# (id, chat fields over the base, expected body fields over the base, diagnostics)
ROWS: list[tuple[str, dict[str, Any], dict[str, Any], list[tuple[str, str]]]] = [
    ("minimal", {}, {}, []),
    # --- messages, every role -------------------------------------------------------------
    (
        "system_and_developer_stay_items",
        {"messages": [{"role": "system", "content": "S"}, {"role": "developer", "content": "D"}, HI]},
        {
            "input": [
                {"type": "message", "role": "system", "content": "S"},
                {"type": "message", "role": "developer", "content": "D"},
                HI_ITEM,
            ]
        },
        [],
    ),
    (
        "system_text_parts",
        {"messages": [{"role": "system", "content": [{"type": "text", "text": "S"}]}, HI]},
        {
            "input": [
                {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "S"}]},
                HI_ITEM,
            ]
        },
        [],
    ),
    (
        "message_name_dropped",
        {"messages": [{"role": "user", "content": "Hi", "name": "alice"}]},
        {},
        [("dropped_param", "messages[0].name")],
    ),
    (
        "user_parts",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Look"},
                        {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                        {
                            "type": "file",
                            "file": {"file_data": "data:application/pdf;base64,JV", "filename": "a.pdf"},
                        },
                        {"type": "file", "file": {"file_id": "file-1"}},
                    ],
                }
            ]
        },
        {
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Look"},
                        {"type": "input_image", "image_url": "https://x/a.png", "detail": "high"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AA=="},
                        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                        {
                            "type": "input_file",
                            "filename": "a.pdf",
                            "file_data": "data:application/pdf;base64,JV",
                        },
                        {"type": "input_file", "file_id": "file-1"},
                    ],
                }
            ]
        },
        [],
    ),
    (
        "cache_breakpoint_and_bad_detail",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "a", "prompt_cache_breakpoint": {"mode": "explicit"}},
                        {"type": "image_url", "image_url": {"url": "u", "detail": "ultra"}},
                    ],
                }
            ]
        },
        {
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "a"},
                        {"type": "input_image", "image_url": "u"},
                    ],
                }
            ]
        },
        [
            ("dropped_param", "messages[0].content[0].prompt_cache_breakpoint"),
            ("lossy_value", "messages[0].content[1].image_url.detail"),
        ],
    ),
    (
        "assistant_text",
        {"messages": [HI, {"role": "assistant", "content": "Hello"}]},
        {"input": [HI_ITEM, _assistant(_out("Hello"))]},
        [],
    ),
    (
        "assistant_parts_and_refusal",
        {
            "messages": [
                HI,
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "A"}, {"type": "refusal", "refusal": "No"}],
                    "refusal": "No",
                },
                {"role": "assistant", "content": None, "refusal": "Never"},
            ]
        },
        {
            "input": [
                HI_ITEM,
                _assistant(_out("A"), {"type": "refusal", "refusal": "No"}),
                _assistant({"type": "refusal", "refusal": "Never"}),
            ]
        },
        [],
    ),
    (
        "assistant_empty_turn_kept",
        {"messages": [HI, {"role": "assistant", "content": ""}, HI]},
        {"input": [HI_ITEM, _assistant(_out("")), HI_ITEM]},
        [],
    ),
    (
        "assistant_tool_calls_and_results",
        {
            "messages": [
                HI,
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [_call("c1"), _call("c2", "time")],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "noon"}]},
            ]
        },
        {
            "input": [
                HI_ITEM,
                _assistant(_out("Checking.")),
                _fc("c1"),
                _fc("c2", "time"),
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "noon"}],
                },
            ]
        },
        [],
    ),
    (
        "assistant_calls_only",
        {"messages": [HI, {"role": "assistant", "tool_calls": [_call("c1")]}]},
        {"input": [HI_ITEM, _fc("c1")]},
        [],
    ),
    (
        "reasoning_content_before_message",
        {"messages": [HI, {"role": "assistant", "content": "4", "reasoning_content": "2+2"}]},
        {
            "input": [
                HI_ITEM,
                {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "2+2"}]},
                _assistant(_out("4")),
            ]
        },
        [],
    ),
    (
        "reasoning_vllm_field",
        {"messages": [HI, {"role": "assistant", "reasoning": "think", "tool_calls": [_call("c1")]}]},
        {
            "input": [
                HI_ITEM,
                {
                    "type": "reasoning",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "think"}],
                },
                _fc("c1"),
            ]
        },
        [],
    ),
    (
        "assistant_extras_dropped",
        {
            "messages": [
                HI,
                {
                    "role": "assistant",
                    "content": "x",
                    "audio": {"id": "a1"},
                    "reasoning_details": [{"type": "reasoning.encrypted", "data": "e"}],
                },
            ]
        },
        {"input": [HI_ITEM, _assistant(_out("x"))]},
        [("dropped_param", "messages[1].audio"), ("dropped_param", "messages[1].reasoning_details")],
    ),
    (
        "custom_tool_call_and_its_result",
        {
            "messages": [
                HI,
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "k1", "type": "custom", "custom": {"name": "sql", "input": "1"}}],
                },
                {"role": "tool", "tool_call_id": "k1", "content": "1"},
            ]
        },
        {
            "input": [
                HI_ITEM,
                {"type": "custom_tool_call", "call_id": "k1", "name": "sql", "input": "1"},
                {"type": "custom_tool_call_output", "call_id": "k1", "output": "1"},
            ]
        },
        [],
    ),
    (
        "native_calls_by_their_lowered_names",
        {
            "messages": [
                HI,
                {
                    "role": "assistant",
                    "tool_calls": [
                        _call("a1", "apply_patch", '{"type":"delete_file","path":"a.txt"}'),
                        _call("s1", "shell", '{"commands":["ls"]}'),
                        _call("l1", "local_shell", '{"command":["pwd"]}'),
                        _call("w1", "shell", '{"not":"a shell call"}'),  # forms no shell_call
                    ],
                },
                {"role": "tool", "tool_call_id": "a1", "content": "Deleted a.txt"},
                {"role": "tool", "tool_call_id": "s1", "content": "a.txt"},
                {"role": "tool", "tool_call_id": "l1", "content": "/tmp"},
                {"role": "tool", "tool_call_id": "w1", "content": "?"},
            ]
        },
        {
            "input": [
                HI_ITEM,
                {
                    "type": "apply_patch_call",
                    "call_id": "a1",
                    "operation": {"type": "delete_file", "path": "a.txt"},
                    "status": "completed",
                },
                {
                    "type": "shell_call",
                    "call_id": "s1",
                    "action": {"commands": ["ls"]},
                    "status": "completed",
                },
                {
                    "type": "local_shell_call",
                    "call_id": "l1",
                    "action": {"command": ["pwd"], "env": {}, "type": "exec"},
                    "status": "completed",
                },
                _fc("w1", "shell", '{"not":"a shell call"}'),
                {
                    "type": "apply_patch_call_output",
                    "call_id": "a1",
                    "status": "completed",
                    "output": "Deleted a.txt",
                },
                {"type": "shell_call_output", "call_id": "s1", "output": [{"stdout": "a.txt", "stderr": ""}]},
                {"type": "local_shell_call_output", "id": "l1", "call_id": "l1", "output": "/tmp"},
                {"type": "function_call_output", "call_id": "w1", "output": "?"},
            ]
        },
        [],
    ),
    (
        "a_declared_function_named_shell_stays_a_function",
        {
            "tools": [{"type": "function", "function": {"name": "shell", "parameters": {}}}],
            "messages": [
                HI,
                {"role": "assistant", "tool_calls": [_call("s1", "shell", '{"commands":["ls"]}')]},
                {"role": "tool", "tool_call_id": "s1", "content": "a.txt"},
            ],
        },
        {
            "input": [
                HI_ITEM,
                _fc("s1", "shell", '{"commands":["ls"]}'),
                {"type": "function_call_output", "call_id": "s1", "output": "a.txt"},
            ],
            "tools": [{"type": "function", "name": "shell", "parameters": {}}],
        },
        [],
    ),
    (
        "legacy_function_messages",
        {
            "messages": [
                HI,
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "weather", "arguments": "{}"},
                },
                {"role": "function", "name": "weather", "content": "sunny"},
                {"role": "function", "name": "orphan", "content": None},
            ]
        },
        {
            "input": [
                HI_ITEM,
                _fc("call_fn_1"),
                {"type": "function_call_output", "call_id": "call_fn_1", "output": "sunny"},
            ]
        },
        [("unsupported_item", "messages[3]")],
    ),
    # --- tools and tool_choice --------------------------------------------------------------
    ("function_tool_flattened", {"tools": [WEATHER]}, {"tools": [WEATHER_TOOL]}, []),
    (
        "function_tool_strict",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}, "strict": True}}]},
        {"tools": [{"type": "function", "name": "f", "parameters": {}, "strict": True}]},
        [],
    ),
    (
        "custom_tool",
        {"tools": [WEATHER, CUSTOM]},
        {"tools": [WEATHER_TOOL, CUSTOM_TOOL]},
        [],
    ),
    (
        "tool_choice_none",
        {"tools": [WEATHER], "tool_choice": "none"},
        {"tools": [WEATHER_TOOL], "tool_choice": "none"},
        [],
    ),
    (
        "tool_choice_auto",
        {"tools": [WEATHER], "tool_choice": "auto"},
        {"tools": [WEATHER_TOOL], "tool_choice": "auto"},
        [],
    ),
    (
        "tool_choice_required",
        {"tools": [WEATHER], "tool_choice": "required"},
        {"tools": [WEATHER_TOOL], "tool_choice": "required"},
        [],
    ),
    (
        "tool_choice_named",
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "weather"}}},
        {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "name": "weather"}},
        [],
    ),
    (
        "tool_choice_named_custom",
        {"tools": [CUSTOM], "tool_choice": {"type": "custom", "custom": {"name": "sql"}}},
        {"tools": [CUSTOM_TOOL], "tool_choice": {"type": "custom", "name": "sql"}},
        [],
    ),
    (
        "tool_choice_allowed_tools",
        {
            "tools": [WEATHER],
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [
                        {"type": "function", "function": {"name": "weather"}},
                        {"type": "custom", "custom": {"name": "sql"}},
                    ],
                },
            },
        },
        {
            "tools": [WEATHER_TOOL],
            "tool_choice": {
                "type": "allowed_tools",
                "tools": [{"type": "function", "name": "weather"}, {"type": "custom", "name": "sql"}],
                "mode": "required",
            },
        },
        [],
    ),
    ("tool_choice_auto_without_tools", {"tool_choice": "auto"}, {}, []),
    ("tool_choice_none_without_tools", {"tool_choice": "none"}, {"tool_choice": "none"}, []),
    (
        "tool_choice_required_without_tools",
        {"tool_choice": "required"},
        {},
        [("dropped_param", "tool_choice")],
    ),
    (
        "tool_choice_only_custom_tools",
        {"tools": [CUSTOM], "tool_choice": "required"},
        {"tools": [CUSTOM_TOOL], "tool_choice": "required"},
        [],
    ),
    (
        "legacy_functions_and_function_call",
        {"functions": [WEATHER["function"]], "function_call": {"name": "weather"}},
        {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "name": "weather"}},
        [("lossy_value", "functions")],
    ),
    (
        "legacy_function_call_without_functions",
        {"function_call": "auto"},
        {},
        [],
    ),
    (
        "tool_choice_wins_over_function_call",
        {"tools": [WEATHER], "tool_choice": "required", "function_call": "none"},
        {"tools": [WEATHER_TOOL], "tool_choice": "required"},
        [("dropped_param", "function_call")],
    ),
    (
        "parallel_tool_calls",
        {"tools": [WEATHER], "parallel_tool_calls": False},
        {"tools": [WEATHER_TOOL], "parallel_tool_calls": False},
        [],
    ),
    # --- response_format, reasoning, sampling --------------------------------------------------
    ("format_text", {"response_format": {"type": "text"}}, {"text": {"format": {"type": "text"}}}, []),
    (
        "format_json_object",
        {"response_format": {"type": "json_object"}},
        {"text": {"format": {"type": "json_object"}}},
        [],
    ),
    (
        "format_json_schema_flattened",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "out", "description": "o", "schema": PARAMS, "strict": True},
            }
        },
        {
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "out",
                    "description": "o",
                    "schema": PARAMS,
                    "strict": True,
                }
            }
        },
        [],
    ),
    ("verbosity", {"verbosity": "low"}, {"text": {"verbosity": "low"}}, []),
    ("verbosity_unknown", {"verbosity": "loud"}, {}, [("lossy_value", "verbosity")]),
    ("reasoning_effort", {"reasoning_effort": "high"}, {"reasoning": {"effort": "high"}}, []),
    ("reasoning_effort_unknown", {"reasoning_effort": "max"}, {}, [("lossy_value", "reasoning_effort")]),
    ("max_completion_tokens", {"max_completion_tokens": 64}, {"max_output_tokens": 64}, []),
    ("max_tokens", {"max_tokens": 32}, {"max_output_tokens": 32}, []),
    (
        "max_completion_tokens_wins",
        {"max_tokens": 32, "max_completion_tokens": 64},
        {"max_output_tokens": 64},
        [],
    ),
    (
        "sampling",
        {"temperature": 0.2, "top_p": 0.9, "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 7},
        {"temperature": 0.2, "top_p": 0.9, "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 7},
        [],
    ),
    ("logprobs", {"logprobs": True}, {"include": ["message.output_text.logprobs"]}, []),
    (
        "logprobs_top",
        {"logprobs": True, "top_logprobs": 3},
        {"include": ["message.output_text.logprobs"], "top_logprobs": 3},
        [],
    ),
    ("logprobs_false", {"logprobs": False}, {}, []),
    # --- identity, caching, tiers, storage, streaming -----------------------------------------
    (
        "identity_and_cache",
        {
            "user": "u1",
            "safety_identifier": "s1",
            "prompt_cache_key": "k1",
            "metadata": {"a": "b"},
            "service_tier": "flex",
        },
        {
            "user": "u1",
            "safety_identifier": "s1",
            "prompt_cache_key": "k1",
            "metadata": {"a": "b"},
            "service_tier": "flex",
        },
        [],
    ),
    # `store: true` asks for a stored chat completion, which the shim does not keep: reported
    ("client_store_true_reported", {"store": True}, {}, [("dropped_param", "store")]),
    ("client_store_false", {"store": False}, {}, []),
    ("n_and_stop_emulated_by_server", {"n": 2, "stop": ["\n"]}, {}, []),
    # --- no Responses equivalent: reported -------------------------------------------------------
    ("logit_bias", {"logit_bias": {"50256": -100}}, {}, [("dropped_param", "logit_bias")]),
    (
        "audio_output",
        {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
        {},
        [("dropped_param", "audio"), ("dropped_param", "modalities")],
    ),
    ("modalities_text_only", {"modalities": ["text"]}, {}, []),
    (
        "prediction",
        {"prediction": {"type": "content", "content": "x"}},
        {},
        [("dropped_param", "prediction")],
    ),
    ("web_search_options", {"web_search_options": {}}, {}, [("unsupported_tool", "web_search_options")]),
    (
        "prompt_cache_options",
        {"prompt_cache_options": {"mode": "explicit"}, "prompt_cache_retention": "24h"},
        {},
        [("dropped_param", "prompt_cache_options"), ("dropped_param", "prompt_cache_retention")],
    ),
    ("unknown_vendor_param", {"top_k": 40}, {}, [("dropped_param", "top_k")]),
]


def _translate(
    fields: dict[str, Any], *, stream: bool = False, policy: Any = "warn"
) -> tuple[dict[str, Any], Diagnostics]:
    chat = {"model": "client-model", "messages": [HI], **fields}
    diags = Diagnostics(policy)
    body = to_responses_request(
        decode_chat_request(json.dumps(chat)), model="upstream-model", diags=diags, stream=stream
    )
    return json.loads(encode_create_response_body(body)), diags


@pytest.mark.parametrize(
    ("chat", "expected", "diagnostics"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_chat_request_to_responses(
    chat: dict[str, Any], expected: dict[str, Any], diagnostics: list[tuple[str, str]]
) -> None:
    got, diags = _translate(chat)
    assert got == {"model": "upstream-model", "input": [HI_ITEM], "store": False, **expected}
    assert [(d.kind, d.param) for d in diags.items] == diagnostics


def test_row_ids_are_unique() -> None:
    ids = [row[0] for row in ROWS]
    assert len(ids) == len(set(ids))


# (chat stream fields, stream flag, expected body fields)
STREAM_ROWS: list[tuple[dict[str, Any], bool, dict[str, Any]]] = [
    ({"stream": True}, True, {"stream": True}),
    ({"stream": True, "stream_options": {"include_usage": True}}, True, {"stream": True}),
    (
        {"stream": True, "stream_options": {"include_obfuscation": False}},
        True,
        {"stream": True, "stream_options": {"include_obfuscation": False}},
    ),
    ({"stream": True, "stream_options": {"include_obfuscation": False}}, False, {}),
]


@pytest.mark.parametrize(("chat", "stream", "expected"), STREAM_ROWS)
def test_stream_flag_comes_from_the_caller(
    chat: dict[str, Any], stream: bool, expected: dict[str, Any]
) -> None:
    got, diags = _translate(chat, stream=stream)
    assert got == {"model": "upstream-model", "input": [HI_ITEM], "store": False, **expected}
    assert not diags


def test_store_is_the_callers_choice() -> None:
    chat = decode_chat_request(json.dumps({"model": "m", "messages": [HI]}))
    body = to_responses_request(chat, model="m", diags=Diagnostics(), stream=False, store=True)
    assert body.store is True


def test_error_policy_raises_on_the_first_loss() -> None:
    with pytest.raises(UnsupportedParameter) as info:
        _translate({"logit_bias": {"1": 1}}, policy="error")
    assert info.value.param == "logit_bias"


def test_ignore_policy_records_nothing() -> None:
    _, diags = _translate({"logit_bias": {"1": 1}, "top_k": 1}, policy="ignore")
    assert not diags


def test_empty_messages_are_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        _translate({"messages": []})
    assert info.value.param == "messages"


def test_nulls_inside_free_form_json_survive_encoding() -> None:
    got, _ = _translate({"tools": [WEATHER]})
    assert got["tools"][0]["parameters"]["properties"]["city"]["default"] is None


def test_hosted_items_go_to_a_responses_upstream_as_they_came() -> None:
    """A history item the shim keeps whole (``hosted_item``: here a ``web_search_call``) is sent
    to an Open Responses upstream (the pass-through route's history) as the client sent it."""
    raw = {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "q"},
    }
    body = decode_create_response_body(json.dumps({"model": "m", "input": [raw]}).encode())
    assert isinstance(body.input, list) and isinstance(body.input[0], r.HostedItemParam)
    assert json.loads(encode_create_response_body(body))["input"] == [raw]

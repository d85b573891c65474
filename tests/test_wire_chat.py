"""Chat Completions wire structs: request round trips, tolerant response decoding, OpenAI-exact encoding."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.wire.chat import (
    CHAT_REQUEST_FIELDS,
    ChatCompletion,
    ChatCompletionAssistantMessageParam,
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessage,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageToolCall,
    ChatCompletionNamedToolChoiceParam,
    ChatCompletionRequest,
    ChatCompletionStreamOptions,
    ChatCompletionSystemMessageParam,
    ChatCompletionTokenLogprob,
    ChatCompletionToolMessageParam,
    ChatCompletionUserMessageParam,
    ChatErrorBody,
    ChatErrorResponse,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChoiceLogprobs,
    ChunkChoice,
    CompletionTokensDetails,
    CompletionUsage,
    Function,
    FunctionDefinition,
    PromptTokensDetails,
    ResponseFormatJSONSchema,
    ToolName,
    TopLogprob,
    decode_chat_request,
    decode_chunk,
    decode_chunk_or_error,
    decode_completion,
    decode_error,
    encode_chat_request,
    encode_chunk,
    encode_completion,
)

# ---------------------------------------------------------------------------------------------
# Requests: decode then encode reproduces the input
# ---------------------------------------------------------------------------------------------

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}

ALL_ROLES: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": [{"type": "text", "text": "Part one."}], "name": "sys"},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hi", "name": "alice"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
                },
                {"type": "file", "file": {"file_id": "file-abc"}},
                {
                    "type": "text",
                    "text": "cache up to here",
                    "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "30m"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "reasoning_content": "The user wants weather.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"c"}'},
                },
                {"id": "call_2", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "1"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "It is "}, {"type": "refusal", "refusal": "I can't."}],
            "refusal": "I can't.",
            "name": "bot",
            "reasoning": "vLLM-style reasoning",
            "reasoning_details": [{"type": "reasoning.text", "text": "r", "signature": "sig", "index": 0}],
        },
        {"role": "assistant", "content": "", "audio": {"id": "audio_1"}},
        {"role": "assistant", "function_call": {"name": "legacy", "arguments": "{}"}},
        {"role": "function", "name": "legacy", "content": "ok"},
        {"role": "function", "name": "legacy", "content": None},
    ],
}

TOOLS: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "weather?"}],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": WEATHER_PARAMS,
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "noop", "parameters": {}, "strict": False}},
        {"type": "function", "function": {"name": "bare"}},
        {"type": "custom", "custom": {"name": "free", "description": "anything"}},
        {"type": "custom", "custom": {"name": "plain", "format": {"type": "text"}}},
        {
            "type": "custom",
            "custom": {
                "name": "sql",
                "format": {
                    "type": "grammar",
                    "grammar": {"definition": "start: /SELECT .*/", "syntax": "lark"},
                },
            },
        },
    ],
    "parallel_tool_calls": False,
}

TOOL_CHOICES: list[Any] = [
    "none",
    "auto",
    "required",
    {"type": "function", "function": {"name": "get_weather"}},
    {"type": "custom", "custom": {"name": "sql"}},
    {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [
                {"type": "function", "function": {"name": "get_weather"}},
                {"type": "custom", "custom": {"name": "sql"}},
            ],
        },
    },
]

RESPONSE_FORMATS: list[Any] = [
    {"type": "text"},
    {"type": "json_object"},
    {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_PARAMS, "strict": True}},
    {"type": "json_schema", "json_schema": {"name": "loose", "description": "any object", "strict": False}},
]

EVERY_OPTION: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hi"}],
    "audio": {"format": "mp3", "voice": "alloy"},
    "frequency_penalty": 0.5,
    "logit_bias": {"50256": -100, "15339": 5},
    "logprobs": True,
    "max_completion_tokens": 256,
    "max_tokens": 128,
    "metadata": {"team": "search", "run": "7"},
    "modalities": ["text", "audio"],
    "n": 2,
    "prediction": {"type": "content", "content": "Hi there"},
    "presence_penalty": -0.25,
    "prompt_cache_key": "user-42",
    "prompt_cache_options": {"mode": "explicit", "ttl": "30m"},
    "prompt_cache_retention": "24h",
    "reasoning_effort": "low",
    "safety_identifier": "sha256:abc",
    "seed": 1234,
    "service_tier": "flex",
    "stop": ["\n\n", "END"],
    "store": False,
    "stream": True,
    "stream_options": {"include_usage": True, "include_obfuscation": False},
    "temperature": 0.7,
    "top_logprobs": 3,
    "top_p": 0.9,
    "user": "u-1",
    "verbosity": "low",
    "web_search_options": {
        "search_context_size": "medium",
        "user_location": {"type": "approximate", "approximate": {"city": "Paris", "country": "FR"}},
    },
}

LEGACY_FUNCTIONS: dict[str, Any] = {
    "model": "gpt-3.5-turbo",
    "messages": [{"role": "user", "content": "hi"}],
    "functions": [{"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}],
    "function_call": {"name": "f"},
}

ROUND_TRIPS: list[tuple[str, dict[str, Any]]] = [
    ("minimal", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    ("all roles and parts", ALL_ROLES),
    ("tools", TOOLS),
    *[(f"tool_choice {json.dumps(tc)[:40]}", {**TOOLS, "tool_choice": tc}) for tc in TOOL_CHOICES],
    *[(f"response_format {rf['type']}", {**TOOLS, "response_format": rf}) for rf in RESPONSE_FORMATS],
    ("every option", EVERY_OPTION),
    ("stop as a string", {**EVERY_OPTION, "stop": "END", "audio": {"format": "wav", "voice": {"id": "v1"}}}),
    (
        "prediction as parts",
        {**EVERY_OPTION, "prediction": {"type": "content", "content": [{"type": "text", "text": "x"}]}},
    ),
    (
        "falsy values survive",
        {**EVERY_OPTION, "temperature": 0, "n": 0, "stop": [], "metadata": {}, "user": ""},
    ),
    ("legacy functions", LEGACY_FUNCTIONS),
    ("legacy function_call auto", {**LEGACY_FUNCTIONS, "function_call": "auto"}),
    (
        "unknown top-level keys",
        {
            "model": "qwen3",
            "messages": [{"role": "user", "content": "hi"}],
            "top_k": 20,
            "min_p": 0.0,
            "chat_template_kwargs": {"enable_thinking": False},
            "reasoning": {"effort": "high"},
            "extra": {"looks": "like our field"},
            "nothing": None,
        },
    ),
]


@pytest.mark.parametrize(("name", "body"), ROUND_TRIPS, ids=[name for name, _ in ROUND_TRIPS])
def test_request_round_trip(name: str, body: dict[str, Any]) -> None:
    req = decode_chat_request(json.dumps(body).encode())
    assert json.loads(encode_chat_request(req)) == body
    assert set(req.extra) == set(body) - CHAT_REQUEST_FIELDS


def test_request_decodes_str_and_dispatches_on_classes() -> None:
    req = decode_chat_request(json.dumps({**ALL_ROLES, **TOOLS, "messages": ALL_ROLES["messages"]}))
    kinds = [type(m).__name__ for m in req.messages]
    assert kinds[:4] == [
        "ChatCompletionSystemMessageParam",
        "ChatCompletionSystemMessageParam",
        "ChatCompletionDeveloperMessageParam",
        "ChatCompletionUserMessageParam",
    ]
    assistant = req.messages[5]
    assert isinstance(assistant, ChatCompletionAssistantMessageParam)
    assert assistant.reasoning_content == "The user wants weather."
    assert assistant.tool_calls is not None
    assert isinstance(assistant.tool_calls[0], ChatCompletionMessageFunctionToolCallParam)
    assert req.tools is not None
    assert isinstance(req.tools[0], ChatCompletionFunctionToolParam)


def test_response_format_and_tool_choice_decode_to_structs() -> None:
    body = {**TOOLS, "tool_choice": TOOL_CHOICES[3], "response_format": RESPONSE_FORMATS[2]}
    req = decode_chat_request(json.dumps(body))
    assert req.tool_choice == ChatCompletionNamedToolChoiceParam(function=ToolName(name="get_weather"))
    assert isinstance(req.response_format, ResponseFormatJSONSchema)
    assert req.response_format.json_schema.schema == WEATHER_PARAMS


def test_request_nulls_are_normalised_away() -> None:
    body: dict[str, Any] = {name: None for name in CHAT_REQUEST_FIELDS - {"model", "messages"}}
    body["model"] = "m"
    body["messages"] = [
        {"role": "user", "content": "hi", "name": None},
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": None,
            "reasoning_content": None,
        },
        {"role": "function", "name": "f", "content": None},
    ]
    encoded = json.loads(encode_chat_request(decode_chat_request(json.dumps(body))))
    assert encoded == {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant"},
            # Required-but-nullable in OpenAI's schema: kept.
            {"role": "function", "name": "f", "content": None},
        ],
    }


def test_nested_unknown_keys_are_dropped() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    }
    encoded = json.loads(encode_chat_request(decode_chat_request(json.dumps(body))))
    assert encoded["messages"][0]["content"] == [{"type": "text", "text": "x"}]


def test_constructed_request_encodes_only_what_was_set() -> None:
    req = ChatCompletionRequest(
        model="m",
        messages=[
            ChatCompletionSystemMessageParam(content="be brief"),
            ChatCompletionUserMessageParam(content="hi"),
            ChatCompletionAssistantMessageParam(
                tool_calls=[ChatCompletionMessageFunctionToolCallParam(id="c1", function=Function(name="f"))]
            ),
            ChatCompletionToolMessageParam(tool_call_id="c1", content="ok"),
        ],
        stream=True,
        stream_options=ChatCompletionStreamOptions(include_usage=True),
        tools=[ChatCompletionFunctionToolParam(function=FunctionDefinition(name="f", parameters={}))],
    )
    assert json.loads(encode_chat_request(req)) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [{"type": "function", "id": "c1", "function": {"name": "f", "arguments": ""}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }


def test_extra_is_merged_and_wins_over_known_fields() -> None:
    req = ChatCompletionRequest(model="m", messages=[], max_tokens=5, extra={"top_k": 40})
    assert json.loads(encode_chat_request(req)) == {
        "model": "m",
        "messages": [],
        "max_tokens": 5,
        "top_k": 40,
    }
    req.extra = {"max_tokens": 9, "top_k": 40}
    assert json.loads(encode_chat_request(req)) == {
        "model": "m",
        "messages": [],
        "max_tokens": 9,
        "top_k": 40,
    }
    assert req.max_tokens == 5  # encoding never mutates the request


def test_invalid_request_reports_a_path() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.messages\[1\]"):
        decode_chat_request(
            b'{"model":"m","messages":[{"role":"user","content":"a"},{"role":"robot","content":"b"}]}'
        )
    with pytest.raises(msgspec.ValidationError, match=r"\$\.tool_choice"):
        decode_chat_request(b'{"model":"m","messages":[],"tool_choice":"sometimes"}')


# Every optional top-level field: either absent, explicitly null, or set to a valid value.
SAMPLE_VALUES: dict[str, Any] = {
    key: value for key, value in EVERY_OPTION.items() if key not in ("model", "messages")
}
SAMPLE_VALUES |= {
    "tools": TOOLS["tools"],
    "tool_choice": TOOL_CHOICES[-1],
    "response_format": RESPONSE_FORMATS[2],
    "parallel_tool_calls": False,
    "functions": LEGACY_FUNCTIONS["functions"],
    "function_call": "none",
}


def test_sample_values_cover_every_field() -> None:
    assert set(SAMPLE_VALUES) == CHAT_REQUEST_FIELDS - {"model", "messages"}


def _nulls(value: Any, path: str = "$") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]")]
    return []


@given(st.dictionaries(st.sampled_from(sorted(SAMPLE_VALUES)), st.sampled_from(["null", "set"])))
def test_encoded_request_never_has_null_for_unset_fields(choice: dict[str, str]) -> None:
    body: dict[str, Any] = {"model": "m", "messages": ALL_ROLES["messages"][:-1]}
    body |= {key: None if how == "null" else SAMPLE_VALUES[key] for key, how in choice.items()}
    encoded = json.loads(encode_chat_request(decode_chat_request(json.dumps(body))))
    assert _nulls(encoded) == []
    assert encoded == {key: value for key, value in body.items() if value is not None}


# ---------------------------------------------------------------------------------------------
# Responses: tolerant decoding
# ---------------------------------------------------------------------------------------------


def chunk(*choices: ChunkChoice, **fields: Any) -> ChatCompletionChunk:
    return ChatCompletionChunk(choices=list(choices), **fields)


def text(content: str | None, **fields: Any) -> ChunkChoice:
    return ChunkChoice(delta=ChoiceDelta(content=content), **fields)


FULL_HEAD = '"id":"c1","object":"chat.completion.chunk","created":7,"model":"m"'

TOLERANT_CHUNKS: list[tuple[str, str, ChatCompletionChunk]] = [
    (
        "complete OpenAI chunk",
        "{" + FULL_HEAD + ',"system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"Hi"},'
        '"logprobs":null,"finish_reason":null}]}',
        chunk(text("Hi"), id="c1", created=7, model="m", system_fingerprint="fp"),
    ),
    (
        "missing object",
        '{"id":"c1","created":7,"model":"m","choices":[]}',
        chunk(id="c1", created=7, model="m"),
    ),
    ("missing created", '{"id":"c1","model":"m","choices":[]}', chunk(id="c1", model="m")),
    ("missing id", '{"created":7,"model":"m","choices":[]}', chunk(created=7, model="m")),
    ("missing model", '{"id":"c1","created":7,"choices":[]}', chunk(id="c1", created=7)),
    ("missing everything but choices", '{"choices":[{"delta":{"content":"x"}}]}', chunk(text("x"))),
    ("choices missing", "{" + FULL_HEAD + "}", chunk(id="c1", created=7, model="m")),
    (
        "usage-only final chunk",
        "{" + FULL_HEAD + ',"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,'
        '"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":{"reasoning_tokens":2}}}',
        chunk(
            id="c1",
            created=7,
            model="m",
            usage=CompletionUsage(
                prompt_tokens=3,
                completion_tokens=4,
                total_tokens=7,
                prompt_tokens_details=PromptTokensDetails(cached_tokens=1),
                completion_tokens_details=CompletionTokensDetails(reasoning_tokens=2),
            ),
        ),
    ),
    (
        "usage with null details and no total",
        '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":null}}',
        chunk(usage=CompletionUsage(prompt_tokens=3, completion_tokens=4)),
    ),
    ("usage null", '{"choices":[],"usage":null}', chunk(usage=None)),
    (
        "tool call without index",
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_1","type":"function",'
        '"function":{"name":"f","arguments":""}}]}}]}',
        chunk(
            ChunkChoice(
                delta=ChoiceDelta(
                    tool_calls=[
                        ChoiceDeltaToolCall(
                            id="call_1",
                            type="function",
                            function=ChoiceDeltaToolCallFunction(name="f", arguments=""),
                        )
                    ]
                )
            )
        ),
    ),
    (
        "tool call without type",
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_1","function":{"name":"f"}}]}}]}',
        chunk(
            ChunkChoice(
                delta=ChoiceDelta(
                    tool_calls=[
                        ChoiceDeltaToolCall(
                            index=1, id="call_1", function=ChoiceDeltaToolCallFunction(name="f")
                        )
                    ]
                )
            )
        ),
    ),
    (
        "tool call arguments only",
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"a\\""}}]}}]}',
        chunk(
            ChunkChoice(
                delta=ChoiceDelta(
                    tool_calls=[
                        ChoiceDeltaToolCall(index=0, function=ChoiceDeltaToolCallFunction(arguments='{"a"'))
                    ]
                )
            )
        ),
    ),
    (
        "content null",
        '{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}',
        chunk(ChunkChoice(delta=ChoiceDelta(role="assistant"))),
    ),
    (
        "delta missing",
        '{"choices":[{"index":0,"finish_reason":"stop"}]}',
        chunk(ChunkChoice(finish_reason="stop")),
    ),
    (
        "choice index missing",
        '{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}',
        chunk(text("x")),
    ),
    (
        "empty role",
        '{"choices":[{"delta":{"role":"","content":"x"}}]}',
        chunk(ChunkChoice(delta=ChoiceDelta(role="", content="x"))),
    ),
    (
        "vendor finish_reason",
        '{"choices":[{"delta":{},"finish_reason":"eos"}]}',
        chunk(ChunkChoice(finish_reason="eos")),
    ),
    (
        "reasoning fields",
        '{"choices":[{"delta":{"reasoning_content":"a","reasoning":"b",'
        '"reasoning_details":[{"type":"reasoning.text","text":"b"}]}}]}',
        chunk(
            ChunkChoice(
                delta=ChoiceDelta(
                    reasoning_content="a",
                    reasoning="b",
                    reasoning_details=[{"type": "reasoning.text", "text": "b"}],
                )
            )
        ),
    ),
    (
        "unknown keys everywhere",
        "{" + FULL_HEAD + ',"obfuscation":"xyz","x_groq":{"id":"q"},"choices":[{"index":0,"stop_reason":null,'
        '"delta":{"content":"x","audio_extra":1,"tool_calls":[{"index":0,"zz":1,"function":{"arguments":"","yy":2}}]},'
        '"matched_stop":1}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"cost":0.1,'
        '"prompt_tokens_details":{"cached_tokens":0,"weird":3}}}',
        chunk(
            ChunkChoice(
                delta=ChoiceDelta(
                    content="x",
                    tool_calls=[
                        ChoiceDeltaToolCall(index=0, function=ChoiceDeltaToolCallFunction(arguments=""))
                    ],
                )
            ),
            id="c1",
            created=7,
            model="m",
            usage=CompletionUsage(
                prompt_tokens=1,
                completion_tokens=1,
                total_tokens=2,
                prompt_tokens_details=PromptTokensDetails(cached_tokens=0),
            ),
        ),
    ),
    (
        "logprobs",
        '{"choices":[{"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.5,"bytes":[97],'
        '"top_logprobs":[{"token":"a","logprob":-0.5,"bytes":null}]}]}}]}',
        chunk(
            ChunkChoice(
                delta=ChoiceDelta(content="a"),
                logprobs=ChoiceLogprobs(
                    content=[
                        ChatCompletionTokenLogprob(
                            token="a",
                            logprob=-0.5,
                            bytes=[97],
                            top_logprobs=[TopLogprob(token="a", logprob=-0.5)],
                        )
                    ]
                ),
            )
        ),
    ),
    ("service_tier", '{"service_tier":"default","choices":[]}', chunk(service_tier="default")),
]


@pytest.mark.parametrize(
    ("name", "payload", "expected"), TOLERANT_CHUNKS, ids=[c[0] for c in TOLERANT_CHUNKS]
)
def test_tolerant_chunk_decoding(name: str, payload: str, expected: ChatCompletionChunk) -> None:
    assert decode_chunk(payload) == expected
    assert decode_chunk(payload.encode()) == expected


def test_absent_and_null_usage_are_both_falsy() -> None:
    for payload in ('{"choices":[]}', '{"choices":[],"usage":null}'):
        assert not decode_chunk(payload).usage


def test_tolerant_completion_decoding() -> None:
    body = {
        "choices": [
            {
                "message": {
                    "content": None,
                    "reasoning_content": "think",
                    "tool_calls": [
                        {"id": "call_1", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "g"}, "index": 1},
                    ],
                    "unknown": True,
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
        "weird": [1, 2],
    }
    completion = decode_completion(json.dumps(body))
    assert completion == ChatCompletion(
        choices=[
            Choice(
                message=ChatCompletionMessage(
                    reasoning_content="think",
                    tool_calls=[
                        ChatCompletionMessageToolCall(
                            id="call_1", function=Function(name="f", arguments="{}")
                        ),
                        ChatCompletionMessageToolCall(
                            id="call_2", type="function", function=Function(name="g")
                        ),
                    ],
                ),
                finish_reason="tool_calls",
            )
        ],
        usage=CompletionUsage(prompt_tokens=5, completion_tokens=6, total_tokens=11),
    )
    message = completion.choices[0].message
    assert not message.reasoning  # absent: UNSET, falsy
    assert message.annotations is None


# ---------------------------------------------------------------------------------------------
# Responses: what we emit encodes exactly like OpenAI
# ---------------------------------------------------------------------------------------------

HEAD = {"id": "chatcmpl-1", "created": 1700000000, "model": "gpt-4o", "system_fingerprint": "fp_1"}
HEAD_JSON = (
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o",'
    '"system_fingerprint":"fp_1"'
)

OUTBOUND_CHUNKS: list[tuple[str, ChatCompletionChunk, str]] = [
    (
        "role chunk",
        chunk(ChunkChoice(delta=ChoiceDelta(role="assistant", content="")), **HEAD),
        HEAD_JSON + ',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
        '"logprobs":null,"finish_reason":null}]}',
    ),
    (
        "text chunk with usage requested",
        chunk(text("Hello"), usage=None, **HEAD),
        HEAD_JSON
        + ',"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],'
        '"usage":null}',
    ),
    (
        "tool call start",
        chunk(
            ChunkChoice(
                delta=ChoiceDelta(
                    tool_calls=[
                        ChoiceDeltaToolCall(
                            index=0,
                            id="call_1",
                            type="function",
                            function=ChoiceDeltaToolCallFunction(name="f", arguments=""),
                        )
                    ]
                )
            ),
            **HEAD,
        ),
        HEAD_JSON
        + ',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function",'
        '"function":{"name":"f","arguments":""}}]},"logprobs":null,"finish_reason":null}]}',
    ),
    (
        "tool call arguments",
        chunk(
            ChunkChoice(
                delta=ChoiceDelta(
                    tool_calls=[
                        ChoiceDeltaToolCall(
                            index=0, function=ChoiceDeltaToolCallFunction(arguments='{"a":1}')
                        )
                    ]
                )
            ),
            **HEAD,
        ),
        HEAD_JSON + ',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,'
        '"function":{"arguments":"{\\"a\\":1}"}}]},'
        '"logprobs":null,"finish_reason":null}]}',
    ),
    (
        "finish chunk",
        chunk(ChunkChoice(finish_reason="stop"), **HEAD),
        HEAD_JSON + ',"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}',
    ),
    (
        "usage chunk",
        chunk(
            usage=CompletionUsage(
                prompt_tokens=9,
                completion_tokens=3,
                total_tokens=12,
                prompt_tokens_details=PromptTokensDetails(cached_tokens=0, audio_tokens=0),
                completion_tokens_details=CompletionTokensDetails(
                    reasoning_tokens=0,
                    audio_tokens=0,
                    accepted_prediction_tokens=0,
                    rejected_prediction_tokens=0,
                ),
            ),
            **HEAD,
        ),
        HEAD_JSON + ',"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,'
        '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":'
        '{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}',
    ),
    (
        "logprobs",
        chunk(
            ChunkChoice(
                delta=ChoiceDelta(content="a"),
                logprobs=ChoiceLogprobs(
                    content=[ChatCompletionTokenLogprob(token="a", logprob=-0.5, bytes=[97], top_logprobs=[])]
                ),
            ),
            **HEAD,
        ),
        HEAD_JSON
        + ',"choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.5,'
        '"bytes":[97],"top_logprobs":[]}],"refusal":null},"finish_reason":null}]}',
    ),
]


@pytest.mark.parametrize(("name", "value", "expected"), OUTBOUND_CHUNKS, ids=[c[0] for c in OUTBOUND_CHUNKS])
def test_outbound_chunk_encodes_like_openai(name: str, value: ChatCompletionChunk, expected: str) -> None:
    assert encode_chunk(value).decode() == expected
    assert decode_chunk(expected) == value


OUTBOUND_COMPLETION = ChatCompletion(
    id="chatcmpl-1",
    created=1700000000,
    model="gpt-4o",
    choices=[
        Choice(
            message=ChatCompletionMessage(content="Hi", annotations=[]),
            finish_reason="stop",
        ),
        Choice(
            index=1,
            message=ChatCompletionMessage(
                tool_calls=[
                    ChatCompletionMessageToolCall(
                        id="call_1", type="function", function=Function(name="f", arguments="{}")
                    )
                ],
                annotations=[],
            ),
            finish_reason="tool_calls",
        ),
    ],
    usage=CompletionUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
    service_tier="default",
    system_fingerprint="fp_1",
)


def test_outbound_completion_encodes_like_openai() -> None:
    assert json.loads(encode_completion(OUTBOUND_COMPLETION)) == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi", "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            },
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            },
        ],
        "usage": {
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": 3,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        },
        "service_tier": "default",
        "system_fingerprint": "fp_1",
    }
    assert decode_completion(encode_completion(OUTBOUND_COMPLETION)) == OUTBOUND_COMPLETION


def test_vendor_reasoning_is_emitted_only_when_set() -> None:
    message = ChatCompletionMessage(content="x", reasoning_content="why")
    assert json.loads(msgspec.json.encode(message)) == {
        "role": "assistant",
        "content": "x",
        "refusal": None,
        "annotations": None,
        "reasoning_content": "why",
    }


def test_outbound_shapes_validate_with_openai_models() -> None:
    openai_chat = pytest.importorskip("openai.types.chat")
    for _, value, _ in OUTBOUND_CHUNKS:
        openai_chat.ChatCompletionChunk.model_validate_json(encode_chunk(value))
    parsed = openai_chat.ChatCompletion.model_validate_json(encode_completion(OUTBOUND_COMPLETION))
    assert parsed.choices[1].message.tool_calls[0].function.arguments == "{}"


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

ERROR_BODIES: list[tuple[str, str, ChatErrorBody | None]] = [
    (
        "openai",
        '{"error":{"message":"bad model","type":"invalid_request_error","param":"model",'
        '"code":"model_not_found"}}',
        ChatErrorBody(
            message="bad model", type="invalid_request_error", param="model", code="model_not_found"
        ),
    ),
    (
        "llama.cpp numeric code",
        '{"error":{"code":400,"message":"context overflow","type":"invalid_request_error"}}',
        ChatErrorBody(message="context overflow", type="invalid_request_error", code="400"),
    ),
    (
        "openrouter metadata",
        '{"error":{"message":"Provider returned error","code":502,"metadata":{"raw":"x"}},"user_id":"u"}',
        ChatErrorBody(message="Provider returned error", code="502"),
    ),
    ("bare string", '{"error":"model is loading"}', ChatErrorBody(message="model is loading")),
    ("fastapi detail string", '{"detail":"Not Found"}', ChatErrorBody(message="Not Found")),
    (
        "fastapi detail list",
        '{"detail":[{"loc":["body","model"],"msg":"field required"}]}',
        ChatErrorBody(message='[{"loc":["body","model"],"msg":"field required"}]'),
    ),
    (
        "vllm top level",
        '{"object":"error","message":"max_tokens too large","type":"BadRequestError",'
        '"param":null,"code":400}',
        ChatErrorBody(message="max_tokens too large", type="BadRequestError", code="400"),
    ),
    ("gateway message", '{"message":"Forbidden"}', ChatErrorBody(message="Forbidden")),
    (
        "gemini list",
        '[{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}]',
        ChatErrorBody(message="API key not valid", type="INVALID_ARGUMENT", code="400"),
    ),
    ("error without message", '{"error":{"code":500}}', ChatErrorBody(message="", code="500")),
    ("a chunk is not an error", '{"id":"c","choices":[{"delta":{"content":"error"}}]}', None),
    ("error null", '{"error":null,"choices":[]}', None),
    ("not json", "Internal Server Error", None),
    ("empty list", "[]", None),
    ("scalar", "42", None),
    ("wrong error type", '{"error":5}', None),
]


@pytest.mark.parametrize(("name", "payload", "expected"), ERROR_BODIES, ids=[c[0] for c in ERROR_BODIES])
def test_decode_error(name: str, payload: str, expected: ChatErrorBody | None) -> None:
    assert decode_error(payload) == expected
    assert decode_error(payload.encode()) == expected


STREAM_PAYLOADS: list[tuple[str, str, type]] = [
    ("in-band error", '{"error":{"message":"overloaded","type":"server_error"}}', ChatErrorBody),
    ("chunk mentioning error", '{"choices":[{"delta":{"content":"\\"error\\""}}]}', ChatCompletionChunk),
    ("chunk with error as content", '{"choices":[{"delta":{"content":"error"}}]}', ChatCompletionChunk),
    ("chunk with null error key", '{"error":null,"choices":[]}', ChatCompletionChunk),
    ("plain chunk", '{"choices":[]}', ChatCompletionChunk),
]


@pytest.mark.parametrize(("name", "payload", "kind"), STREAM_PAYLOADS, ids=[c[0] for c in STREAM_PAYLOADS])
def test_decode_chunk_or_error(name: str, payload: str, kind: type) -> None:
    assert isinstance(decode_chunk_or_error(payload), kind)
    assert isinstance(decode_chunk_or_error(payload.encode()), kind)


def test_error_response_encodes_openai_envelope() -> None:
    body = ChatErrorResponse(error=ChatErrorBody(message="boom", type="server_error"))
    assert json.loads(msgspec.json.encode(body)) == {
        "error": {"message": "boom", "type": "server_error", "param": None, "code": None}
    }

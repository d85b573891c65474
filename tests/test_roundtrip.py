"""Round trips through the hub reproduce their input, except where a table says why not.

* Chat request → hub (``to_responses_request``) → Chat request (``to_chat_request``, dialect
  ``openai``) gives back the input.
* Open Responses request → Chat request (``to_chat_request``) → Open Responses request
  (``to_responses_request``) gives back the input.

Every loss is a row of ``CHAT_LOSSY`` / ``RESPONSES_LOSSY``: the field, the reason, and the
rewrite the trip applies to it. The test applies the rewrites to the input and expects exactly
that back; a rewrite that changes none of the samples fails, so the tables stay honest and small.
Both directions also run with a dialect that replays reasoning, where reasoning is not lost.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from shim.core.diagnostics import Diagnostics
from shim.dialects.model import Dialect
from shim.dialects.registry import get_dialect
from shim.translate.chat_request import to_chat_request
from shim.translate.responses_request import encode_create_response_body, to_responses_request
from shim.wire.chat import decode_chat_request, encode_chat_request
from shim.wire.responses_decode import decode_create_response_body

Json = dict[str, Any]
OPENAI = get_dialect("openai")
REPLAYING = msgspec.structs.replace(
    OPENAI, request=msgspec.structs.replace(OPENAI.request, reasoning_replay="field")
)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def chat_to_chat(chat: Json, dialect: Dialect = OPENAI) -> Json:
    req = decode_chat_request(json.dumps(chat))
    body = to_responses_request(req, model=req.model, diags=Diagnostics("ignore"), stream=bool(req.stream))
    hub = decode_create_response_body(encode_create_response_body(body))
    assert isinstance(hub.input, list) and hub.model is not None
    back = to_chat_request(
        hub, hub.input, model=hub.model, dialect=dialect, diags=Diagnostics("ignore"), stream=bool(hub.stream)
    )
    out: Json = json.loads(encode_chat_request(back))
    return out


def responses_to_responses(body: Json, dialect: Dialect = OPENAI) -> Json:
    hub = decode_create_response_body(json.dumps(body).encode())
    assert isinstance(hub.input, list) and hub.model is not None
    chat = to_chat_request(
        hub, hub.input, model=hub.model, dialect=dialect, diags=Diagnostics("ignore"), stream=bool(hub.stream)
    )
    req = decode_chat_request(encode_chat_request(chat))
    back = to_responses_request(req, model=req.model, diags=Diagnostics("ignore"), stream=bool(req.stream))
    out: Json = json.loads(encode_create_response_body(back))
    return out


# ---------------------------------------------------------------------------------------------
# Chat → hub → Chat
# ---------------------------------------------------------------------------------------------

CHAT_SAMPLES: dict[str, Json] = {
    "everything": {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                    {
                        "type": "file",
                        "file": {"file_data": "data:application/pdf;base64,JV", "filename": "a.pdf"},
                    },
                    {"type": "file", "file": {"file_id": "file-1"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Let me check.",
                "reasoning_content": "Need the weather.",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"P"}'},
                    },
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"L"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "rain"}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Sun."}, {"type": "refusal", "refusal": "No."}],
            },
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Weather.",
                    "parameters": SCHEMA,
                    "strict": True,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "description": "d", "schema": SCHEMA, "strict": True},
        },
        "reasoning_effort": "low",
        "max_completion_tokens": 256,
        "temperature": 0.5,
        "top_p": 0.9,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logprobs": True,
        "top_logprobs": 2,
        "seed": 7,
        "user": "u1",
        "metadata": {"team": "a"},
        "prompt_cache_key": "k1",
        "safety_identifier": "s1",
        "service_tier": "flex",
        "verbosity": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    "json_object_and_choice_strings": {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
        "response_format": {"type": "json_object"},
    },
    "legacy_and_emulated": {
        "model": "gpt-x",
        "messages": [
            {"role": "user", "content": "Hi", "name": "alice"},
            {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
            {"role": "function", "name": "f", "content": "ok"},
        ],
        "functions": [{"name": "f", "parameters": SCHEMA}],
        "function_call": {"name": "f"},
        "max_tokens": 64,
        "n": 2,
        "stop": ["\n\n"],
        "logit_bias": {"50256": -100},
    },
    "allowed_tools": {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [
            {"type": "function", "function": {"name": "f"}},
            {"type": "function", "function": {"name": "g"}},
        ],
        "tool_choice": {
            "type": "allowed_tools",
            "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "g"}}]},
        },
    },
}


def _each_message(chat: Json, fix: Callable[[Json], None]) -> None:
    for message in chat["messages"]:
        fix(message)


def _assistant_text_as_parts(m: Json) -> None:
    if m["role"] == "assistant" and isinstance(m.get("content"), str) and m["content"]:
        m["content"] = [{"type": "text", "text": m["content"]}]


def _legacy_to_tools(chat: Json) -> None:
    chat["tools"] = [{"type": "function", "function": f} for f in chat.pop("functions")]
    choice = chat.pop("function_call")
    chat["tool_choice"] = {"type": "function", "function": choice} if isinstance(choice, dict) else choice
    for i, m in enumerate(chat["messages"]):
        if "function_call" in m:
            call = {"id": f"call_fn_{i}", "type": "function", "function": m.pop("function_call")}
            m["tool_calls"] = [call]
            m.pop("content")
            chat["_legacy"] = call["id"]
        elif m["role"] == "function":
            chat["messages"][i] = {
                "role": "tool",
                "tool_call_id": chat.pop("_legacy"),
                "content": m["content"],
            }


def _allowed_tools_emulated(chat: Json) -> None:
    choice = chat.get("tool_choice")
    if isinstance(choice, dict) and choice["type"] == "allowed_tools":
        names = [t["function"]["name"] for t in choice["allowed_tools"]["tools"]]
        chat["tools"] = [t for t in chat["tools"] if t["function"]["name"] in names]
        chat["tool_choice"] = choice["allowed_tools"]["mode"]


def _drop(*keys: str) -> Callable[[Json], None]:
    def fix(obj: Json) -> None:
        for key in keys:
            obj.pop(key, None)

    return fix


def _rename(old: str, new: str) -> Callable[[Json], None]:
    def fix(obj: Json) -> None:
        if old in obj:
            obj[new] = obj.pop(old)

    return fix


# (field, why it does not come back, the rewrite the round trip applies)
CHAT_LOSSY: list[tuple[str, str, Callable[[Json], None]]] = [
    (
        "messages[].content (assistant string)",
        "the hub holds assistant text as output_text parts; written back as a one-part array (same meaning)",
        lambda chat: _each_message(chat, _assistant_text_as_parts),
    ),
    (
        "messages[].reasoning_content",
        "dialect openai replays no reasoning (reasoning_replay = drop); kept by a replaying dialect",
        lambda chat: _each_message(chat, _drop("reasoning_content")),
    ),
    (
        "messages[].name",
        "Open Responses messages have no name (reported)",
        lambda chat: _each_message(chat, _drop("name")),
    ),
    (
        "functions, function_call, function messages",
        "the hub has only tools and call ids: legacy forms come back as tools/tool_calls with ids call_fn_<i>",
        lambda chat: _legacy_to_tools(chat) if "functions" in chat else None,
    ),
    (
        "tool_choice (allowed_tools)",
        "the forward writer emulates allowed_tools for every upstream: only the allowed tools, choice = mode",
        _allowed_tools_emulated,
    ),
    (
        "max_tokens",
        "dialect openai writes the non-deprecated max_completion_tokens",
        _rename("max_tokens", "max_completion_tokens"),
    ),
    ("n, stop", "emulated by the server, never sent to a Responses upstream", _drop("n", "stop")),
    ("logit_bias", "no Open Responses equivalent (reported)", _drop("logit_bias")),
    (
        "metadata",
        "the forward writer (chat_request.py) does not send metadata to Chat upstreams",
        _drop("metadata"),
    ),
    (
        "verbosity",
        "the forward writer (chat_request.py) does not send text.verbosity to Chat upstreams",
        _drop("verbosity"),
    ),
]


def _expected(sample: Json, table: list[tuple[str, str, Callable[[Json], None]]]) -> Json:
    expected = copy.deepcopy(sample)
    for _, _, fix in table:
        fix(expected)
    return expected


@pytest.mark.parametrize("name", CHAT_SAMPLES)
def test_chat_round_trip(name: str) -> None:
    sample = CHAT_SAMPLES[name]
    assert chat_to_chat(sample) == _expected(sample, CHAT_LOSSY)


@pytest.mark.parametrize(("field", "reason", "fix"), CHAT_LOSSY, ids=[row[0] for row in CHAT_LOSSY])
def test_every_chat_loss_is_exercised(field: str, reason: str, fix: Callable[[Json], None]) -> None:
    changed = []
    for sample in CHAT_SAMPLES.values():
        rewritten = copy.deepcopy(sample)
        fix(rewritten)
        changed.append(rewritten != sample)
    assert any(changed), f"{field}: no sample loses it; drop the row ({reason})"


def test_chat_round_trip_keeps_reasoning_with_a_replaying_dialect() -> None:
    sample = CHAT_SAMPLES["everything"]
    table = [row for row in CHAT_LOSSY if row[0] != "messages[].reasoning_content"]
    assert chat_to_chat(sample, REPLAYING) == _expected(sample, table)


# ---------------------------------------------------------------------------------------------
# Responses → Chat → Responses
# ---------------------------------------------------------------------------------------------


def _msg(role: str, content: Any, **extra: Any) -> Json:
    return {"type": "message", "role": role, "content": content, **extra}


RESPONSES_SAMPLES: dict[str, Json] = {
    "everything": {
        "model": "gpt-x",
        "instructions": "Be brief.",
        "input": [
            _msg("developer", [{"type": "input_text", "text": "French."}]),
            _msg(
                "user",
                [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "https://x/a.png", "detail": "high"},
                    {
                        "type": "input_file",
                        "filename": "a.pdf",
                        "file_data": "data:application/pdf;base64,JV",
                    },
                ],
            ),
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "Need weather."}],
            },
            _msg(
                "assistant",
                [{"type": "output_text", "text": "Checking.", "annotations": []}],
                id="msg_1",
                status="completed",
            ),
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "weather",
                "arguments": "{}",
                "id": "fc_1",
                "status": "completed",
            },
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            _msg("assistant", "Sunny."),
            _msg("user", "Thanks"),
        ],
        "tools": [
            {"type": "function", "name": "weather", "description": "W.", "parameters": SCHEMA, "strict": True}
        ],
        "tool_choice": {"type": "function", "name": "weather"},
        "parallel_tool_calls": True,
        "text": {
            "format": {"type": "json_schema", "name": "a", "schema": SCHEMA, "strict": True},
            "verbosity": "high",
        },
        "reasoning": {"effort": "medium", "summary": "auto"},
        "max_output_tokens": 100,
        "temperature": 0.3,
        "top_p": 0.8,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "include": ["message.output_text.logprobs"],
        "top_logprobs": 3,
        "seed": 1,
        "user": "u1",
        "metadata": {"k": "v"},
        "prompt_cache_key": "k1",
        "safety_identifier": "s1",
        "service_tier": "priority",
        "store": False,
        "stream": True,
    },
    "formats_and_choices": {
        "model": "gpt-x",
        "input": [_msg("system", "S"), _msg("user", "Hi")],
        "tools": [{"type": "function", "name": "f"}, {"type": "function", "name": "g"}],
        "tool_choice": {
            "type": "allowed_tools",
            "tools": [{"type": "function", "name": "g"}],
            "mode": "required",
        },
        "text": {"format": {"type": "text"}},
        "stop": ["END"],
        "store": True,
    },
    "json_object": {
        "model": "gpt-x",
        "input": [_msg("user", [{"type": "input_text", "text": "Hi"}])],
        "text": {"format": {"type": "json_object"}},
        "tool_choice": "none",
        "store": False,
    },
}


def _instructions_as_system(body: Json) -> None:
    if "instructions" in body:
        body["input"].insert(0, _msg("system", body.pop("instructions")))


def _each_item(body: Json, fix: Callable[[Json], Json | None]) -> None:
    body["input"] = [out for item in body["input"] if (out := fix(item)) is not None]


def _no_reasoning(item: Json) -> Json | None:
    return None if item["type"] == "reasoning" else item


def _no_ids(item: Json) -> Json:
    return {k: v for k, v in item.items() if k not in ("id", "status")}


def _assistant_string_as_parts(item: Json) -> Json:
    if item["type"] == "message" and item["role"] == "assistant" and isinstance(item["content"], str):
        return {**item, "content": [{"type": "output_text", "text": item["content"], "annotations": []}]}
    return item


def _allowed_tools_narrowed(body: Json) -> None:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice["type"] == "allowed_tools":
        names = [t["name"] for t in choice["tools"]]
        body["tools"] = [t for t in body["tools"] if t["name"] in names]
        body["tool_choice"] = choice["mode"]


def _text_fix(body: Json) -> None:
    text = body.get("text", {})
    text.pop("verbosity", None)
    if text.get("format") == {"type": "text"}:
        text.pop("format")
    if "text" in body and not text:
        body.pop("text")


def _store_false(body: Json) -> None:
    body["store"] = False


RESPONSES_LOSSY: list[tuple[str, str, Callable[[Json], None]]] = [
    (
        "instructions",
        "written to Chat as a leading system message and read back as an input item (by design)",
        _instructions_as_system,
    ),
    (
        "input[] reasoning items",
        "dialect openai replays no reasoning (reasoning_replay = drop); kept by a replaying dialect",
        lambda body: _each_item(body, _no_reasoning),
    ),
    (
        "input[].id, input[].status",
        "Chat messages carry no item ids or statuses",
        lambda body: _each_item(body, _no_ids),
    ),
    (
        "input[].content (assistant string)",
        "the hub holds assistant text as output_text parts",
        lambda body: _each_item(body, _assistant_string_as_parts),
    ),
    (
        "tool_choice (allowed_tools)",
        "Chat upstreams get allowed_tools emulated: only the allowed tools, choice = mode",
        _allowed_tools_narrowed,
    ),
    (
        "text.format (text), text.verbosity",
        "format text is the default and not written; the forward writer does not send verbosity",
        _text_fix,
    ),
    (
        "reasoning.summary",
        "Chat Completions has no reasoning summary switch",
        lambda body: body["reasoning"].pop("summary", None) if "reasoning" in body else None,
    ),
    (
        "metadata",
        "the forward writer (chat_request.py) does not send metadata to Chat upstreams",
        _drop("metadata"),
    ),
    ("stop", "emulated by the server, never sent to a Responses upstream", _drop("stop")),
    ("store", "always false upstream: the shim owns state", _store_false),
]


@pytest.mark.parametrize("name", RESPONSES_SAMPLES)
def test_responses_round_trip(name: str) -> None:
    sample = RESPONSES_SAMPLES[name]
    assert responses_to_responses(sample) == _expected(sample, RESPONSES_LOSSY)


@pytest.mark.parametrize(("field", "reason", "fix"), RESPONSES_LOSSY, ids=[row[0] for row in RESPONSES_LOSSY])
def test_every_responses_loss_is_exercised(field: str, reason: str, fix: Callable[[Json], None]) -> None:
    changed = []
    for sample in RESPONSES_SAMPLES.values():
        rewritten = copy.deepcopy(sample)
        fix(rewritten)
        changed.append(rewritten != sample)
    assert any(changed), f"{field}: no sample loses it; drop the row ({reason})"


def test_responses_round_trip_keeps_reasoning_with_a_replaying_dialect() -> None:
    sample = RESPONSES_SAMPLES["everything"]
    table = [row for row in RESPONSES_LOSSY if row[0] != "input[] reasoning items"]
    assert responses_to_responses(sample, REPLAYING) == _expected(sample, table)

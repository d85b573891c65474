"""Nothing a Chat client sends is silently ignored: a row per field of ``POST /v1/chat/completions``.

The fields come from openai-python's Chat ``CompletionCreateParams`` (read at test time, so a
new SDK field fails ``test_table_is_complete`` until it has a row). Over an Open Responses
upstream each is honoured, translated or emulated (the row checks its effect on the upstream's
Responses request or on the answer), reported (a diagnostic: header under ``warn``, 400 under
``error``) or refused (400 ``unsupported_parameter`` naming it)
(``shim/translate/chat_request_fields.py``). Over a Chat upstream (pass-through) every field
reaches the upstream as sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.settings import Route
from shim.translate.chat_request_fields import CHAT_FIELDS
from tests.server.harness import UPSTREAM_URL, Shim
from tests.support.scripted_responses import ScriptedResponses

Check = Callable[[httpx.Response, ScriptedResponses], None]
HELLO = [{"role": "user", "content": "Hello"}]
FUNCTION = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
TOOL = {"type": "function", "function": FUNCTION}


def _sdk_fields() -> set[str]:
    params = pytest.importorskip("openai.types.chat.completion_create_params")
    return set(params.CompletionCreateParamsBase.__annotations__) | {"stream"}


def _sent(key: str, value: Any) -> Check:
    def check(answer: httpx.Response, upstream: ScriptedResponses) -> None:
        assert upstream.requests[-1].get(key) == value, (key, upstream.requests[-1].get(key))

    return check


def _sent_at(path: tuple[str, ...], value: Any) -> Check:
    def check(answer: httpx.Response, upstream: ScriptedResponses) -> None:
        found: Any = upstream.requests[-1]
        for key in path:
            found = found[key]
        assert found == value, (path, found)

    return check


def _streamed(answer: httpx.Response, upstream: ScriptedResponses) -> None:
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert upstream.requests[-1]["stream"] is True


def _usage_chunk(answer: httpx.Response, upstream: ScriptedResponses) -> None:
    chunks = [json.loads(b[6:]) for b in answer.text.split("\n\n") if b.startswith("data: {")]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def _two_choices(answer: httpx.Response, upstream: ScriptedResponses) -> None:
    assert [c["index"] for c in answer.json()["choices"]] == [0, 1]
    assert len(upstream.requests) == 2


def _cut_at_stop(answer: httpx.Response, upstream: ScriptedResponses) -> None:
    content = answer.json()["choices"][0]["message"]["content"]
    assert "said" not in content and content, content
    assert "stop" not in upstream.requests[-1]


def _text_only(answer: httpx.Response, upstream: ScriptedResponses) -> None:
    assert "x-shim-diagnostics" not in answer.headers
    assert answer.json()["choices"][0]["message"]["content"]


def _input(answer: httpx.Response, upstream: ScriptedResponses) -> None:
    assert upstream.requests[-1]["input"] == [{"type": "message", "role": "user", "content": "Hello"}]


# field -> (value sent, extra fields it needs, check of its effect). `model`, `messages` always.
ACCEPTED: dict[str, tuple[Any, dict[str, Any], Check]] = {
    "model": ("m", {}, _sent("model", "m")),
    "messages": (HELLO, {}, _input),
    "frequency_penalty": (0.5, {}, _sent("frequency_penalty", 0.5)),
    "function_call": (
        {"name": "get_weather"},
        {"tools": [TOOL]},
        _sent("tool_choice", {"type": "function", "name": "get_weather"}),
    ),
    "functions": ([FUNCTION], {}, _sent_at(("tools", 0, "name"), "get_weather")),
    "logprobs": (
        True,
        {},
        lambda a, u: "message.output_text.logprobs" in u.requests[-1]["include"] or pytest.fail(),
    ),
    "top_logprobs": (2, {"logprobs": True}, _sent("top_logprobs", 2)),
    "max_completion_tokens": (7, {}, _sent("max_output_tokens", 7)),
    "max_tokens": (8, {}, _sent("max_output_tokens", 8)),
    "metadata": ({"k": "v"}, {}, _sent("metadata", {"k": "v"})),
    "modalities": (["text"], {}, _text_only),
    "n": (2, {}, _two_choices),
    "parallel_tool_calls": (False, {"tools": [TOOL]}, _sent("parallel_tool_calls", False)),
    "presence_penalty": (0.5, {}, _sent("presence_penalty", 0.5)),
    "prompt_cache_key": ("pk", {}, _sent("prompt_cache_key", "pk")),
    "reasoning_effort": ("low", {}, _sent("reasoning", {"effort": "low"})),
    "response_format": ({"type": "json_object"}, {}, _sent_at(("text", "format"), {"type": "json_object"})),
    "verbosity": ("low", {}, _sent_at(("text", "verbosity"), "low")),
    "safety_identifier": ("u-1", {}, _sent("safety_identifier", "u-1")),
    "seed": (3, {}, _sent("seed", 3)),
    "service_tier": ("flex", {}, _sent("service_tier", "flex")),
    "stop": (["said"], {}, _cut_at_stop),
    "store": (False, {}, _sent("store", False)),
    "stream": (True, {}, _streamed),
    "stream_options": ({"include_usage": True}, {"stream": True}, _usage_chunk),
    "temperature": (0.25, {}, _sent("temperature", 0.25)),
    "tool_choice": ("required", {"tools": [TOOL]}, _sent("tool_choice", "required")),
    "tools": ([TOOL], {}, _sent_at(("tools", 0, "name"), "get_weather")),
    "top_p": (0.5, {}, _sent("top_p", 0.5)),
    "user": ("u-2", {}, _sent("user", "u-2")),
}

REPORTED: dict[str, Any] = {
    "audio": {"voice": "alloy", "format": "wav"},
    "logit_bias": {"50256": -100},
    "prediction": {"type": "content", "content": "Hello"},
    "prompt_cache_options": {"ttl": "24h"},
    "prompt_cache_retention": "24h",
    "web_search_options": {},
}
# A value of an accepted field that the shim cannot do: reported like the fields above.
REPORTED_VALUES: dict[str, tuple[str, Any]] = {
    "store: true": ("store", True),
    "modalities with audio": ("modalities", ["text", "audio"]),
}
REFUSED: dict[str, Any] = {"moderation": {"model": "omni-moderation-latest"}}


def test_table_is_complete() -> None:
    fields = _sdk_fields()
    assert fields - set(CHAT_FIELDS) == set(), "a Chat request field without a decision in CHAT_FIELDS"
    rows = set(ACCEPTED) | set(REPORTED) | set(REFUSED)
    assert rows == set(CHAT_FIELDS), "a decision without a test row"
    assert {f for f, how in CHAT_FIELDS.items() if how == "reported"} == set(REPORTED)
    assert {f for f, how in CHAT_FIELDS.items() if how == "refused"} == set(REFUSED)


def _over_responses(make_shim: Callable[..., Shim], upstream: ScriptedResponses, policy: str) -> Shim:
    route = Route(upstream=UPSTREAM_URL, kind="responses")
    return make_shim(target=upstream, routes=(route,), diagnostics=policy)


async def _post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO, **body})


@pytest.mark.parametrize("field", sorted(ACCEPTED))
async def test_accepted_field_has_its_effect_over_responses(
    field: str, make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    upstream = ScriptedResponses()
    value, extra, check = ACCEPTED[field]
    answer = await _post(connect(_over_responses(make_shim, upstream, "warn")), {**extra, field: value})
    assert answer.status_code == 200, answer.text
    assert f"dropped_param:{field}" not in answer.headers.get("x-shim-diagnostics", "")
    check(answer, upstream)


@pytest.mark.parametrize("name", sorted(REPORTED) + sorted(REPORTED_VALUES))
async def test_reported_field_is_named(
    name: str, make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    field, value = REPORTED_VALUES.get(name, (name, REPORTED.get(name)))
    warned = await _post(connect(_over_responses(make_shim, ScriptedResponses(), "warn")), {field: value})
    assert warned.status_code == 200, warned.text
    assert f":{field}" in warned.headers["x-shim-diagnostics"]
    refused = await _post(connect(_over_responses(make_shim, ScriptedResponses(), "error")), {field: value})
    assert refused.status_code == 400
    assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == (
        "unsupported_parameter",
        field,
    )


@pytest.mark.parametrize("field", sorted(REFUSED))
async def test_refused_field_is_a_400_naming_it(
    field: str, make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    upstream = ScriptedResponses()
    answer = await _post(connect(_over_responses(make_shim, upstream, "warn")), {field: REFUSED[field]})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", field)
    assert upstream.requests == []


PASSTHROUGH_EXTRA = {"tools": [TOOL]}  # tool_choice, function_call, parallel_tool_calls need tools


@pytest.mark.parametrize("field", sorted(CHAT_FIELDS))
async def test_pass_through_forwards_every_field(
    field: str, make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    """Over a Chat upstream the upstream judges: each field arrives as the client sent it."""
    value = ACCEPTED[field][0] if field in ACCEPTED else {**REPORTED, **REFUSED}[field]
    shim = make_shim()
    body = {**PASSTHROUGH_EXTRA, field: value}
    if field == "stream_options":
        body["stream"] = True
    answer = await _post(connect(shim), body)
    assert answer.status_code == 200, answer.text
    assert shim.upstream.bodies[-1][field] == value

"""Nothing a client sends is silently ignored: a row per request field of ``POST /v1/responses``.

The fields come from the spec's ``CreateResponseBody`` and openai-python's
``ResponseCreateParams`` (read at test time, so a new SDK field fails ``test_table_is_complete``
until it has a row). Over a Chat upstream each field is honoured or translated (the row proves
the effect: the upstream body, the answer, or the stored state), reported (a diagnostic: the
``x-shim-diagnostics`` header under ``warn``, 400 ``unsupported_parameter`` under ``error``), or
refused with 400 ``unsupported_parameter`` naming it (``shim/translate/request_fields.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.translate.request_fields import FIELDS
from tests.server.harness import Shim

Check = Callable[[httpx.Response, dict[str, Any]], None]  # the answer, the upstream's body
# Beside the checkout, as tests/server/test_openapi.py expects; a worktree sits one level deeper.
_CANDIDATES = [
    Path(__file__).resolve().parents[n] / "shared" / "spec" / "openresponses-openapi.json" for n in (3, 4)
]
SPEC = next((p for p in _CANDIDATES if p.exists()), _CANDIDATES[0])


def _spec_fields() -> set[str]:
    if not SPEC.exists():  # as tests/server/test_openapi.py
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Open Responses spec must be beside the checkout in CI ({SPEC})")
        pytest.skip(f"the Open Responses spec is not beside the checkout ({SPEC})")
    spec = json.loads(SPEC.read_text())
    return set(spec["components"]["schemas"]["CreateResponseBody"]["properties"])


def _sdk_fields() -> set[str]:
    params = pytest.importorskip("openai.types.responses.response_create_params")
    return set(params.ResponseCreateParamsBase.__annotations__) | {"stream"}


def _upstream(key: str, value: Any) -> Check:
    def check(answer: httpx.Response, upstream: dict[str, Any]) -> None:
        assert upstream.get(key) == value, (key, upstream.get(key))

    return check


def _echo(key: str, value: Any) -> Check:
    def check(answer: httpx.Response, upstream: dict[str, Any]) -> None:
        assert answer.json()[key] == value

    return check


def _messages(check: Callable[[list[dict[str, Any]]], bool]) -> Check:
    def run(answer: httpx.Response, upstream: dict[str, Any]) -> None:
        assert check(upstream["messages"]), upstream["messages"]

    return run


def _both(*checks: Check) -> Check:
    def run(answer: httpx.Response, upstream: dict[str, Any]) -> None:
        for check in checks:
            check(answer, upstream)

    return run


def _streamed(answer: httpx.Response, upstream: dict[str, Any]) -> None:
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert upstream.get("stream") is True


def _queued(answer: httpx.Response, upstream: dict[str, Any]) -> None:
    assert answer.json()["status"] == "queued"


def _logprobs(answer: httpx.Response, upstream: dict[str, Any]) -> None:
    assert upstream.get("logprobs") is True


def _named_tool(answer: httpx.Response, upstream: dict[str, Any]) -> None:
    assert upstream["tools"][0]["function"]["name"] == "get_time"
    assert upstream["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


TOOL = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}

# field -> (value sent, check of its effect). `model` and `input` are in every request.
ACCEPTED: dict[str, tuple[Any, Check]] = {
    "model": ("m", _upstream("model", "m")),
    "input": ("Hello there", _messages(lambda m: m[-1]["content"][0]["text"] == "Hello there")),
    "instructions": ("Be brief.", _messages(lambda m: m[0] == {"role": "system", "content": "Be brief."})),
    "include": (["message.output_text.logprobs"], _logprobs),
    "tools": ([TOOL], lambda a, u: u["tools"][0]["function"]["name"] == "get_time" or pytest.fail()),
    "tool_choice": ({"type": "function", "name": "get_time"}, _named_tool),
    "parallel_tool_calls": (
        False,
        _both(_upstream("parallel_tool_calls", False), _echo("parallel_tool_calls", False)),
    ),
    "metadata": (
        {"k": "v"},
        _both(_echo("metadata", {"k": "v"}), lambda a, u: "metadata" not in u or pytest.fail()),
    ),
    "text": (
        {"format": {"type": "json_object"}},
        _upstream("response_format", {"type": "json_object"}),
    ),
    "temperature": (0.25, _both(_upstream("temperature", 0.25), _echo("temperature", 0.25))),
    "top_p": (0.5, _both(_upstream("top_p", 0.5), _echo("top_p", 0.5))),
    "presence_penalty": (0.5, _upstream("presence_penalty", 0.5)),
    "frequency_penalty": (0.5, _upstream("frequency_penalty", 0.5)),
    "top_logprobs": (2, _both(_upstream("top_logprobs", 2), _upstream("logprobs", True))),
    "max_output_tokens": (7, _both(_upstream("max_completion_tokens", 7), _echo("max_output_tokens", 7))),
    "reasoning": ({"effort": "low"}, _upstream("reasoning_effort", "low")),
    "stream": (True, _streamed),
    "background": (True, _queued),
    "store": (False, _echo("store", False)),
    "service_tier": ("flex", _upstream("service_tier", "flex")),
    "safety_identifier": (
        "u-1",
        _both(_upstream("safety_identifier", "u-1"), _echo("safety_identifier", "u-1")),
    ),
    "prompt_cache_key": ("pk", _both(_upstream("prompt_cache_key", "pk"), _echo("prompt_cache_key", "pk"))),
    "truncation": ("disabled", _echo("truncation", "disabled")),
    "user": ("u-2", _upstream("user", "u-2")),
    "seed": (3, _upstream("seed", 3)),
    "stop": (["END"], _upstream("stop", ["END"])),
    "stream_options": ({"include_obfuscation": False}, _streamed),
}
# Each needs another part of the request or of the store: rows in test_conversations.py
# (`conversation`), tests/server/test_retrieval.py and the chains (`previous_response_id`),
# tests/server/test_context_limits.py (`context_management`; `truncation: "auto"` too),
# tests/server/test_prompts.py (`prompt`: it needs the operator's template directory).
ELSEWHERE = {"conversation", "previous_response_id", "context_management", "prompt"}

REPORTED: dict[str, Any] = {
    "max_tool_calls": 2,
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"ttl": "24h"},
}

REFUSED: dict[str, Any] = {
    "access_programs": {"programs": ["x"]},
    "background_options": {"completion_window": "2h"},
    "image": {"detail": "high"},
    "moderation": {"model": "omni-moderation-latest"},
}


def test_table_is_complete() -> None:
    fields = _spec_fields() | _sdk_fields() | {"seed", "stop"}
    assert fields - set(FIELDS) == set(), "a request field without a decision in request_fields.FIELDS"
    rows = set(ACCEPTED) | ELSEWHERE | set(REPORTED) | set(REFUSED)
    assert rows == set(FIELDS), "a decision without a test row"
    assert {f for f, how in FIELDS.items() if how == "refused"} == set(REFUSED)
    assert {f for f, how in FIELDS.items() if how == "reported"} == set(REPORTED)


async def _post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/responses", json={"model": "m", "input": "Hello there", **body})


@pytest.mark.parametrize("field", sorted(ACCEPTED))
async def test_accepted_field_has_its_effect(
    field: str, make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = make_shim(diagnostics="error")  # a field dropped with a diagnostic would fail here
    client = connect(shim)
    value, check = ACCEPTED[field]
    body = {field: value}
    if field in ("tool_choice", "parallel_tool_calls"):  # both go upstream only with tools
        body["tools"] = [TOOL]
    if field == "stream_options":
        body["stream"] = True
    answer = await _post(client, body)
    assert answer.status_code == 200, answer.text
    if field == "background":  # the task runs on; wait until its upstream request went out
        for _ in range(200):
            if shim.upstream.bodies:
                break
            await asyncio.sleep(0.01)
    check(answer, shim.upstream.bodies[-1] if shim.upstream.bodies else {})


@pytest.mark.parametrize("field", sorted(REPORTED))
async def test_reported_field_is_named(
    field: str, make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    warned = await _post(connect(make_shim(diagnostics="warn")), {field: REPORTED[field]})
    assert warned.status_code == 200, warned.text
    assert f"dropped_param:{field}" in warned.headers["x-shim-diagnostics"]
    refused = await _post(connect(make_shim(diagnostics="error")), {field: REPORTED[field]})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_parameter"
    assert refused.json()["error"]["param"] == field


@pytest.mark.parametrize("field", sorted(REFUSED))
async def test_refused_field_is_a_400_naming_it(field: str, client: httpx.AsyncClient, shim: Shim) -> None:
    answer = await _post(client, {field: REFUSED[field]})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "unsupported_parameter",
        field,
    )
    assert shim.upstream.requests == []  # refused before the upstream was asked


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"include": ["reasoning.encrypted_content", "no.such.thing"]}, "include[1]"),
        (
            {"stream": True, "stream_options": {"include_obfuscation": True}},
            "stream_options.include_obfuscation",
        ),
    ],
)
async def test_refused_values(
    body: dict[str, Any],
    param: str,
    make_shim: Callable[..., Shim],
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    answer = await _post(connect(make_shim(diagnostics="error")), body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "unsupported_parameter"
    assert answer.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "body",
    [
        {"conversation": "conv_does_not_exist"},
        {"prompt": {"id": "pmpt_1"}},
    ],
)
async def test_the_old_silent_drop_is_gone(body: dict[str, Any], client: httpx.AsyncClient) -> None:
    """Regression: `conversation` and `prompt` were decoded and dropped, answered with a 200 and
    no history; now an unknown conversation or prompt template is a 404 naming it."""
    answer = await _post(client, body)
    assert answer.status_code in (400, 404), answer.text
    assert answer.json()["error"]["param"].split(".")[0] == next(iter(body))


async def test_unknown_field_is_reported_by_name(
    make_shim: Callable[..., Shim], connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    """A field in neither schema is not dropped silently: a diagnostic under `warn`, a 400 under
    `error`; the rest of the body still decodes (the slow path drops only the unknown name)."""
    body = {"frobnicate": {"x": 1}, "temperature": 0.5}
    shim = make_shim(diagnostics="warn")
    warned = await _post(connect(shim), body)
    assert warned.status_code == 200, warned.text
    assert warned.headers["x-shim-diagnostics"] == "dropped_param:frobnicate"
    assert "frobnicate" not in shim.upstream.bodies[-1] and shim.upstream.bodies[-1]["temperature"] == 0.5
    refused = await _post(connect(make_shim(diagnostics="error")), body)
    assert refused.status_code == 400
    assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == (
        "unsupported_parameter",
        "frobnicate",
    )
    clean = await _post(connect(make_shim(diagnostics="warn")), {"temperature": 0.5})
    assert "x-shim-diagnostics" not in clean.headers

"""Which exchanges become cases, and why the others do not (``shim.fixtures.casefile``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.fixtures.casefile import NotACase, case_files
from shim.fixtures.exchange import ClientRequest, Exchange, UpstreamCall, UpstreamRequest

CHAT_ROUTE = {"kind": "chat", "dialect": "vllm", "upstream_model": "m", "policies": {}}
RESPONSES_ROUTE = {"kind": "responses", "dialect": "openai", "upstream_model": "m"}


def _exchange(
    path: str = "/v1/responses",
    body: dict[str, Any] | None = None,
    route: dict[str, Any] | None = None,
    upstream: dict[str, Any] | None = None,
    *,
    status: int | None = 200,
    complete: bool = True,
) -> Exchange:
    body = body if body is not None else {"model": "m", "input": "Hi"}
    request = UpstreamRequest(
        "POST", "http://u/v1/x", {}, json.dumps(upstream or {"model": "m"}).encode(), route or CHAT_ROUTE
    )
    x = Exchange(
        "x0123456789ab",
        1_800_000_000.0,
        client=ClientRequest("POST", path, {}, json.dumps(body).encode()),
        calls=[UpstreamCall(request, status, {}, [b'{"id": "c"}'])],
    )
    x.status, x.complete = 200, complete
    x.response_headers = {"content-type": "application/json"}
    x.output = [b"{}"]
    return x


@pytest.mark.parametrize(
    ("exchange", "reason"),
    [
        (_exchange("/v1/chat/completions"), "not a translated exchange"),  # chat over chat: pass-through
        (_exchange(route=RESPONSES_ROUTE), "not a translated exchange"),  # responses pass-through
        (_exchange(status=None), "never answered"),
        (_exchange(complete=False), "client went away"),
        (
            _exchange(body={"model": "m", "input": "Hi", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (_exchange(body={"model": "m", "input": "Hi", "conversation": "conv_1"}), "conversation"),
        (
            _exchange(body={"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
            "item reference",
        ),
        (
            _exchange("/v1/chat/completions", {"model": "m", "messages": [], "n": 2}, RESPONSES_ROUTE),
            "n > 1",
        ),
        (
            _exchange(
                "/v1/chat/completions",
                {"model": "m", "messages": []},
                RESPONSES_ROUTE,
                {"model": "m", "input": [{"type": "reasoning", "id": "rs_1", "summary": []}]},
            ),
            "remembered reasoning",
        ),
    ],
)
def test_not_a_case(exchange: Exchange, reason: str) -> None:
    with pytest.raises(NotACase, match=reason):
        case_files(exchange)


def test_case_folder_files() -> None:
    route = {
        **CHAT_ROUTE,
        "upstream_model": "big-model",
        "policies": {"temperature": 0.0, "stop": [], "max_tool_rounds": None},
    }
    case = case_files(_exchange(route=route), "dropped_param:truncation")
    assert case.relative == "responses_over_chat/vllm/20270115T080000Z-m-6789ab"
    assert set(case.files) == {
        "request.json",
        "upstream_request.json",
        "upstream.json",
        "upstream.chunks.json",
        "client.json",
        "case.toml",
        "note.md",
    }
    assert case.files["case.toml"] == b'[route]\nupstream_model = "big-model"\ntemperature = 0.0\n'
    assert b"diagnostics: dropped_param:truncation" in case.files["note.md"]

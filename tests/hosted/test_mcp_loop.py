"""The hosted MCP loop over the scripted upstream and real MCP servers (mcp 1.x and 2.x)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.hosted.conftest import build
from tests.server.harness import Shim
from tests.server.harness import parse_sse as split_sse
from tests.support.mcp_servers import McpServers


def parse_sse(text: str) -> list[dict[str, Any]]:
    pairs, _ = split_sse(text)
    events = [json.loads(data) for _, data in pairs]
    assert [name for name, _ in pairs] == [e["type"] for e in events]
    return events


def mcp_tool(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "demo",
        "server_url": url,
        "require_approval": "never",
        "allowed_tools": ["magic_word"],
        **extra,
    }


@pytest.mark.parametrize("line", ["v1", "v2", "sse"])
async def test_call_and_answer_json(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient], line: str
) -> None:
    shim = build()
    client = connect(shim)
    body = {"model": "m", "input": "Magic word for San Francisco?", "tools": [mcp_tool(getattr(mcp, line))]}
    res = await client.post("/v1/responses", json=body)
    assert res.status_code == 200, res.text
    out = res.json()
    kinds = [i["type"] for i in out["output"]]
    assert kinds == ["mcp_list_tools", "mcp_call", "message"]
    listed, call, message = out["output"]
    assert [t["name"] for t in listed["tools"]] == [
        "magic_word",
        "delete_file",
        "fail_tool",
        "big_output",
        "slow",
        "header_names",
        "search",
    ]
    assert call["status"] == "completed" and call["server_label"] == "demo" and call["name"] == "magic_word"
    assert call["output"].startswith("magic-") and call["output"].endswith("-42")
    assert call["output"] in message["content"][0]["text"]  # the model read the tool's output
    assert out["usage"]["input_tokens"] == 24  # two rounds of 12
    assert out["tools"][0]["type"] == "mcp" and "headers" not in out["tools"][0]
    # The upstream was offered the namespaced allowed tool only, and read the output back.
    first, second = shim.upstream.bodies
    assert [t["function"]["name"] for t in first["tools"]] == ["demo__magic_word"]
    assert second["messages"][-1]["role"] == "tool" and second["messages"][-1]["content"] == call["output"]


async def test_stream_is_one_response(mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]) -> None:
    client = connect(build())
    body = {"model": "m", "input": "hi", "stream": True, "tools": [mcp_tool(mcp.v2)]}
    res = await client.post("/v1/responses", json=body)
    assert res.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(res.text)
    types = [e["type"] for e in events]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert types.count("response.created") == 1 and types[-1] == "response.completed"
    assert types[:6] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.output_item.done",
    ]
    for name in (
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.output_text.delta",
    ):
        assert name in types
    indexes = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    assert indexes == [0, 1, 2]
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["mcp_list_tools", "mcp_call", "message"]


async def test_not_allowed_refused_before_connecting(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build(allow=())
    res = await connect(shim).post(
        "/v1/responses", json={"model": "m", "input": "hi", "tools": [mcp_tool(mcp.v1)]}
    )
    assert res.status_code == 400
    assert res.json()["error"]["code"] == "mcp_server_not_allowed"
    assert shim.upstream.requests == []


@pytest.mark.parametrize(
    ("allow", "url", "ok"),
    [
        (("http://127.0.0.1:*/mcp",), "http://127.0.0.1:1/mcp", True),
        (("http://127.0.0.1:*/mcp",), "http://127.0.0.1:1/other", False),
        (("https://*.example.com/*",), "http://a.example.com/mcp", False),
        (("*",), "file:///etc/passwd", False),
        (("*",), "ftp://a/b", False),
        ((), "http://127.0.0.1:1/mcp", False),
    ],
)
def test_allow_list(allow: tuple[str, ...], url: str, ok: bool) -> None:
    from shim.hosted.servers import allowed_url

    assert allowed_url(url, allow) is ok


async def test_unreachable_server(connect: Callable[[Shim], httpx.AsyncClient]) -> None:
    from tests.support.processes import free_port

    url = f"http://127.0.0.1:{free_port()}/mcp"
    res = await connect(build()).post(
        "/v1/responses", json={"model": "m", "input": "hi", "tools": [mcp_tool(url)]}
    )
    assert res.status_code == 424
    assert res.json()["error"]["code"] == "mcp_server_unreachable"


async def test_tool_error_is_seen_and_response_completes(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build()
    tool = mcp_tool(mcp.v1, allowed_tools=["fail_tool"])
    res = await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi", "tools": [tool]})
    out = res.json()
    assert out["status"] == "completed"
    call = out["output"][1]
    assert call["status"] == "failed" and call["error"]["type"] == "mcp_tool_execution_error"
    assert "failed on purpose" in shim.upstream.bodies[1]["messages"][-1]["content"]


async def test_output_size_limit(mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]) -> None:
    shim = build(mcp_max_output_bytes=8)  # magic_word's answer is longer
    tool = mcp_tool(mcp.v2)
    out = (
        await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi", "tools": [tool]})
    ).json()
    call = out["output"][1]
    assert call["status"] == "failed" and "larger than" in json.dumps(call["error"])


async def test_approval_accept_and_deny(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build()
    client = connect(shim)
    tool = mcp_tool(mcp.v1, allowed_tools=["delete_file"], require_approval="always")
    first = (
        await client.post("/v1/responses", json={"model": "m", "input": "delete it", "tools": [tool]})
    ).json()
    assert [i["type"] for i in first["output"]] == ["mcp_list_tools", "mcp_approval_request"]
    request = first["output"][1]
    assert len(shim.upstream.bodies) == 1  # nothing ran
    # Accept: the call runs, then the model answers.
    approve = {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}
    second = (
        await client.post(
            "/v1/responses",
            json={"model": "m", "previous_response_id": first["id"], "input": [approve], "tools": [tool]},
        )
    ).json()
    kinds = [i["type"] for i in second["output"]]
    assert kinds == ["mcp_call", "message"], second["output"]  # the tool list was reused
    call = second["output"][0]
    assert call["approval_request_id"] == request["id"] and call["output"].startswith("deleted ")
    # Deny (on the first response again): nothing runs, the model is told.
    deny = {**approve, "approve": False, "reason": "not today"}
    third = (
        await client.post(
            "/v1/responses",
            json={"model": "m", "previous_response_id": first["id"], "input": [deny], "tools": [tool]},
        )
    ).json()
    assert [i["type"] for i in third["output"]] == ["message"]
    assert "declined" in json.dumps(shim.upstream.bodies[-1]["messages"])


async def test_max_tool_calls_then_the_model_answers(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build()
    body = {"model": "m", "input": "hi", "tools": [mcp_tool(mcp.v1)], "max_tool_calls": 1}
    out = (await connect(shim).post("/v1/responses", json=body)).json()
    assert [i["type"] for i in out["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert shim.upstream.bodies[1]["tool_choice"] == "none"


async def test_previous_response_continues_and_reuses_the_list(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build()
    client = connect(shim)
    tool = mcp_tool(mcp.v1)
    first = (await client.post("/v1/responses", json={"model": "m", "input": "hi", "tools": [tool]})).json()
    second = (
        await client.post(
            "/v1/responses",
            json={"model": "m", "input": "again", "previous_response_id": first["id"], "tools": [tool]},
        )
    ).json()
    assert [i["type"] for i in second["output"]] == ["mcp_call", "message"]
    # The earlier call reads back as a call and its output.
    messages = shim.upstream.bodies[2]["messages"]
    assert any(m.get("tool_calls") for m in messages) and any(m["role"] == "tool" for m in messages)


async def test_header_isolation(
    mcp: McpServers,
    connect: Callable[[Shim], httpx.AsyncClient],
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every log line the turn writes, httpx's and the SDK's too
    secret = "sekrit-header-value-4242"
    shim = build(store=f"diskcache:///{tmp_path}/store")
    client = connect(shim)
    tool = mcp_tool(mcp.v2, allowed_tools=["header_names"], headers={"X-Api-Key": secret})
    res = await client.post(
        "/v1/responses", json={"model": "m", "input": "hi", "tools": [tool], "stream": True}
    )
    events = parse_sse(res.text)
    final = events[-1]["response"]
    call = final["output"][1]
    assert "x-api-key" in call["output"]  # the server got it
    got = await client.get(f"/v1/responses/{final['id']}")
    metrics = await client.get("/metrics")
    seen = [
        res.text,
        got.text,
        metrics.text,
        caplog.text,
        *(r.content.decode() for r in shim.upstream.requests),
    ]
    assert all(secret not in text for text in seen)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


async def test_registered_server_by_label(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    from shim.settings import McpServer

    shim = build(allow=(), servers=(McpServer(label="demo", url=mcp.v1, headers={"X-Op": "op-secret"}),))
    tool = {
        "type": "mcp",
        "server_label": "demo",
        "require_approval": "never",
        "allowed_tools": ["header_names"],
    }
    out = (
        await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi", "tools": [tool]})
    ).json()
    assert "x-op" in out["output"][1]["output"]
    assert "op-secret" not in json.dumps(out)


async def stubborn(scope: Any, receive: Any, send: Any) -> None:
    """The scripted model, but it never reads a tool's output and ignores tool_choice "none": it
    calls a tool in every round."""
    from tests.support import scripted_chat
    from tests.support.scripted_asgi import read_body

    body = json.loads(await read_body(receive))
    body["tool_choice"] = "auto"
    body["messages"] = [m for m in body["messages"] if m["role"] != "tool"]
    data = json.dumps(body).encode()

    async def again() -> dict[str, Any]:
        return {"type": "http.request", "body": data, "more_body": False}

    await scripted_chat.app(scope, again, send)


async def test_a_model_that_never_stops_calling(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build(target=stubborn, hosted_max_rounds=2)
    out = (
        await connect(shim).post(
            "/v1/responses", json={"model": "m", "input": "hi", "tools": [mcp_tool(mcp.v1)]}
        )
    ).json()
    assert out["status"] == "completed"
    calls = [i for i in out["output"] if i["type"] == "mcp_call"]
    assert [c["status"] for c in calls] == ["completed", "completed", "failed"]  # the third was not run
    assert "limit" in calls[-1]["error"]["message"]
    assert [b.get("tool_choice") for b in shim.upstream.bodies] == [None, "auto", "none"]


async def test_a_responses_route_passes_mcp_tools_through(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    """On a route of kind ``responses`` the upstream hosts MCP itself: the tool goes there as sent
    and the shim connects nowhere (its allow list is for its own connections)."""
    from shim.settings import Route
    from tests.server.harness import UPSTREAM_URL
    from tests.support.scripted_responses import ScriptedResponses

    upstream = ScriptedResponses()
    shim = build(allow=(), target=upstream, routes_override=(Route(upstream=UPSTREAM_URL, kind="responses"),))
    tool = mcp_tool("https://mcp.example.com/mcp", headers={"X-Key": "for-the-upstream"})
    res = await connect(shim).post("/v1/responses", json={"model": "m", "input": "hi", "tools": [tool]})
    assert res.status_code == 200, res.text
    assert upstream.requests[-1]["tools"] == [tool]


async def test_a_forced_choice_is_met_by_an_approved_call(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    """The approved call ran in this response: the round after it is not forced again (agents
    repeat a forced tool_choice on every turn; it looped until their max_turns)."""
    shim = build()
    client = connect(shim)
    tool = mcp_tool(mcp.v1, allowed_tools=["delete_file"], require_approval="always")
    choice = {"type": "mcp", "server_label": "demo", "name": "delete_file"}
    first = (
        await client.post(
            "/v1/responses", json={"model": "m", "input": "x", "tools": [tool], "tool_choice": choice}
        )
    ).json()
    approve = {
        "type": "mcp_approval_response",
        "approval_request_id": first["output"][1]["id"],
        "approve": True,
    }
    body = {
        "model": "m",
        "previous_response_id": first["id"],
        "input": [approve],
        "tools": [tool],
        "tool_choice": choice,
    }
    second = (await client.post("/v1/responses", json=body)).json()
    assert [i["type"] for i in second["output"]] == ["mcp_call", "message"]
    assert shim.upstream.bodies[0]["tool_choice"] == {
        "type": "function",
        "function": {"name": "demo__delete_file"},
    }
    assert shim.upstream.bodies[1]["tool_choice"] == "auto"


async def test_compaction_item_leads_a_hosted_turn(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    """``context_management`` compacted first: its item is output 0, the rounds' items follow."""
    history: list[dict[str, Any]] = [{"role": "user", "content": "Earlier question " * 60}]
    history += [{"role": "assistant", "content": "Earlier answer " * 60}, {"role": "user", "content": "hi"}]
    management = [{"type": "compaction", "compact_threshold": 200}]
    body = {"model": "m", "input": history, "stream": True, "tools": [mcp_tool(mcp.v2)]}
    res = await connect(build()).post("/v1/responses", json={**body, "context_management": management})
    events = parse_sse(res.text)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added = [
        (e["output_index"], e["item"]["type"]) for e in events if e["type"] == "response.output_item.added"
    ]
    assert added == [(0, "compaction"), (1, "mcp_list_tools"), (2, "mcp_call"), (3, "message")]
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["compaction", "mcp_list_tools", "mcp_call", "message"]

"""Hosted MCP tools through the openai SDK (events validated by openai-python's own types),
over WebSocket and in the background; web search through an operator's MCP provider."""

from __future__ import annotations

import asyncio
import json
import typing
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import pytest
from litestar.testing import TestClient

from shim.settings import McpServer, WebSearchProvider
from tests.hosted.conftest import build
from tests.hosted.test_mcp_loop import mcp_tool, parse_sse
from tests.server.harness import Shim
from tests.server.openai_sdk import openai_sdk
from tests.support.mcp_servers import McpServers

openai = pytest.importorskip("openai")
pytest.importorskip("httpx2", reason="openai 3.x uses httpx2 for its http_client")

from openai.types.responses import Response, ResponseStreamEvent  # noqa: E402
from pydantic import Field, TypeAdapter  # noqa: E402

EVENTS: TypeAdapter[Any] = TypeAdapter(
    Annotated[typing.get_args(ResponseStreamEvent)[0], Field(discriminator="type")]
)


async def test_openai_sdk_stream_validates(mcp: McpServers) -> None:
    async with openai_sdk(build()) as client:
        stream = await client.responses.create(
            model="m", input="Magic word for Paris?", tools=[mcp_tool(mcp.v2)], stream=True
        )
        events = [event async for event in stream]
    for event in events:  # each event against openai-python's own union, strictly
        EVENTS.validate_python(event.model_dump(mode="json", exclude_unset=True))
    final = events[-1]
    assert final.type == "response.completed"
    TypeAdapter(Response).validate_python(final.response.model_dump(mode="json", exclude_unset=True))
    assert [i.type for i in final.response.output] == ["mcp_list_tools", "mcp_call", "message"]


def test_websocket_turn(mcp: McpServers) -> None:
    shim = build()
    with TestClient(app=shim.app) as client, client.websocket_connect("/v1/responses") as ws:
        ws.send_text(
            json.dumps({"type": "response.create", "model": "m", "input": "hi", "tools": [mcp_tool(mcp.v1)]})
        )
        events = []
        while not events or events[-1]["type"] not in ("response.completed", "response.failed"):
            events.append(json.loads(ws.receive_text(timeout=30)))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [i["type"] for i in events[-1]["response"]["output"]] == ["mcp_list_tools", "mcp_call", "message"]


async def test_background(mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]) -> None:
    client = connect(build())
    body = {"model": "m", "input": "hi", "background": True, "tools": [mcp_tool(mcp.v1)]}
    queued = (await client.post("/v1/responses", json=body)).json()
    assert queued["status"] == "queued"
    async with asyncio.timeout(30):
        while True:
            got = (await client.get(f"/v1/responses/{queued['id']}")).json()
            if got["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.05)
    assert got["status"] == "completed"
    assert [i["type"] for i in got["output"]] == ["mcp_list_tools", "mcp_call", "message"]


async def test_web_search_through_the_provider(
    mcp: McpServers, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    shim = build(
        allow=(),
        servers=(McpServer(label="searx", url=mcp.v2),),
        web_search=WebSearchProvider(server="searx"),
    )
    # The scripted model repeats the last tool output in its answer, URLs included.
    res = await connect(shim).post(
        "/v1/responses",
        json={
            "model": "m",
            "input": "q",
            "stream": True,
            "tools": [{"type": "web_search"}],
            "include": ["web_search_call.action.sources"],
        },
    )
    events = parse_sse(res.text)
    types = [e["type"] for e in events]
    for name in (
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
        "response.output_text.annotation.added",
    ):
        assert name in types
    final = events[-1]["response"]
    search, message = final["output"]
    assert search["type"] == "web_search_call" and search["action"]["type"] == "search"
    assert search["action"]["sources"][0]["url"].startswith("https://docs.example.test/")
    text = message["content"][0]
    citation = text["annotations"][0]
    assert citation["type"] == "url_citation"
    assert text["text"][citation["start_index"] : citation["end_index"]] == citation["url"]
    assert final["tools"] == [{"type": "web_search", "search_context_size": None}]
    for event in events:
        EVENTS.validate_python(event)


async def test_web_search_without_provider_stays_a_diagnostic(
    connect: Callable[[Shim], httpx.AsyncClient],
) -> None:
    res = await connect(build()).post(
        "/v1/responses", json={"model": "m", "input": "q", "tools": [{"type": "web_search"}]}
    )
    assert res.status_code == 200
    assert "unsupported_tool" in res.headers.get("x-shim-diagnostics", "")

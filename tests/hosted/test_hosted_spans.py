"""A hosted MCP call inside a traced request is an ``execute_tool`` span (shim/tracing's helper)
under the request's trace, failed when the tool failed, and never names the server's URL."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.hosted.conftest import build
from tests.hosted.test_mcp_loop import mcp_tool
from tests.server.harness import Shim
from tests.support.mcp_servers import McpServers


@pytest.mark.parametrize(("tool", "failed"), [("magic_word", False), ("fail_tool", True)])
async def test_a_hosted_call_is_a_tool_span(
    mcp: McpServers,
    connect: Callable[[Shim], httpx.AsyncClient],
    spans: InMemorySpanExporter,
    tool: str,
    failed: bool,
) -> None:
    body = {"model": "m", "input": "hi", "tools": [mcp_tool(mcp.v2, allowed_tools=[tool])]}
    res = await connect(build()).post("/v1/responses", json=body)
    assert res.status_code == 200 and res.json()["output"][1]["type"] == "mcp_call", res.text
    finished = spans.get_finished_spans()
    [call] = [s for s in finished if s.name == f"execute_tool {tool}"]
    attributes = dict(call.attributes or {})
    assert attributes["gen_ai.tool.name"] == tool and attributes["mcp.server.name"] == "demo"
    assert not any(mcp.v2 in str(value) for value in attributes.values())
    assert (call.status.status_code == StatusCode.ERROR) is failed
    upstream_calls = [s for s in finished if s.name.startswith("chat ")]
    assert upstream_calls and all(s.context.trace_id == call.context.trace_id for s in upstream_calls)

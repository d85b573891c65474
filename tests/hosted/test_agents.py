"""openai-agents' ``HostedMCPTool`` against the shim (in process, scripted upstream), with and
without approval; the MCP server is a real one (mcp 2.x)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hosted.conftest import build
from tests.hosted.test_mcp_loop import mcp_tool
from tests.server.openai_sdk import openai_sdk
from tests.support.mcp_servers import McpServers

agents = pytest.importorskip("agents", reason="openai-agents is a test extra")
pytest.importorskip("httpx2", reason="openai 3.x uses httpx2 for its http_client")

from agents import Agent, HostedMCPTool, OpenAIResponsesModel, Runner, set_tracing_disabled  # noqa: E402

set_tracing_disabled(True)  # tracing would POST to api.openai.com


def _items(result: Any) -> list[str]:
    return [item.type for item in result.new_items]


async def test_hosted_mcp_tool_without_approval(mcp: McpServers) -> None:
    async with openai_sdk(build()) as client:
        agent = Agent(
            name="a",
            model=OpenAIResponsesModel(model="m", openai_client=client),
            tools=[HostedMCPTool(tool_config=mcp_tool(mcp.v2))],  # type: ignore[arg-type]
        )
        result = await Runner.run(agent, "What is the magic word for Oslo?")
    assert "mcp_list_tools_item" in _items(result) and "tool_call_item" in _items(result)
    assert "magic-" in result.final_output


@pytest.mark.parametrize("approve", [True, False])
async def test_hosted_mcp_tool_with_approval(mcp: McpServers, approve: bool) -> None:
    asked: list[str] = []

    def on_approval(request: Any) -> Any:
        asked.append(request.data.name)
        return {"approve": approve, "reason": None if approve else "no deleting today"}

    shim = build()
    async with openai_sdk(shim) as client:
        tool = mcp_tool(mcp.v2, allowed_tools=["delete_file"], require_approval="always")
        agent = Agent(
            name="a",
            model=OpenAIResponsesModel(model="m", openai_client=client),
            tools=[HostedMCPTool(tool_config=tool, on_approval_request=on_approval)],  # type: ignore[arg-type]
        )
        result = await Runner.run(agent, "Delete the file notes.txt")
    assert asked == ["delete_file"]
    sent = [m for body in shim.upstream.bodies for m in body["messages"] if m["role"] == "tool"]
    if approve:
        assert "deleted " in result.final_output  # the scripted model repeats the tool's output
        assert any(str(m["content"]).startswith("deleted ") for m in sent)
    else:
        assert any("declined" in str(m["content"]) for m in sent)
        assert "deleted " not in result.final_output

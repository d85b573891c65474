"""The hosted MCP loop over the real llama upstream in llama-cpp-python's
``chatml-function-calling`` format (Gemma 3 270M), a real MCP server (mcp 1.x), the openai SDK
and openai-agents' ``HostedMCPTool``. What the small model does is printed (``-s``) and asserted
only where the format guarantees it: a forced call is a proper call (``REFERENCE.md``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shim.cli.embedded import FUNCTIONS_CHAT_FORMAT, FUNCTIONS_DIALECT, MODEL_ALIAS
from shim.http.app import create_app
from shim.settings import Route, ServerSettings, Settings, Timeouts
from shim.upstream.client import UpstreamClient
from tests.hosted.test_mcp_loop import mcp_tool
from tests.server.harness import Shim, Upstream
from tests.server.openai_sdk import openai_sdk
from tests.support.mcp_servers import McpServers
from tests.support.real_components import running_llama

agents = pytest.importorskip("agents", reason="openai-agents is a test extra")
pytest.importorskip("httpx2", reason="openai 3.x uses httpx2 for its http_client")

from agents import Agent, HostedMCPTool, ModelSettings, OpenAIResponsesModel, Runner  # noqa: E402


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("hosted-llama") / "llama.log"
    with running_llama(log, n_ctx=4096, chat_format=FUNCTIONS_CHAT_FORMAT) as url:
        yield url


def over_llama(url: str) -> Shim:
    """The in-process shim over the real model, set up as docs/upstreams.md advises for this
    format: one tool round (it never shows the model a tool's output), temperature 0, a newline
    stop and an output cap for the text answer."""
    route = Route(
        upstream=url,
        dialect=FUNCTIONS_DIALECT,
        max_tool_rounds=1,
        temperature=0,
        stop=("\n",),
        max_output_tokens=48,
    )
    settings = Settings(
        server=ServerSettings(
            store="memory://", mcp_allow=("http://127.0.0.1:*",), timeouts=Timeouts(first_byte=600)
        ),
        routes=(route,),
    )
    client = UpstreamClient(settings.server.timeouts, 0)
    return Shim(create_app(settings, upstream=client), Upstream(), client, settings)


def tell(what: str, output: list[Any]) -> None:
    """What the small model did, for the report (``pytest -s``); tool lists shortened."""
    shown = [
        {**i, "tools": [t["name"] for t in i["tools"]]} if isinstance(i, dict) and "tools" in i else i
        for i in output
    ]
    print(f"\n[llama, {what}] " + json.dumps(shown)[:3000])


async def test_forced_mcp_call_over_llama(llama: str, mcp: McpServers) -> None:
    async with openai_sdk(over_llama(llama)) as client:
        response = await client.responses.create(
            model=MODEL_ALIAS,
            input="What is the magic word for Paris?",
            tools=[mcp_tool(mcp.v1)],
            tool_choice={"type": "mcp", "server_label": "demo", "name": "magic_word"},
        )
    output = [item.model_dump(mode="json") for item in response.output]
    tell("forced call", output)
    assert response.status == "completed"
    kinds = [item["type"] for item in output]
    assert kinds[:2] == ["mcp_list_tools", "mcp_call"]  # then a message, unless its answer was empty
    call = output[1]
    assert call["name"] == "magic_word" and call["status"] == "completed"
    assert call["output"].startswith("magic-") and call["output"].endswith("-42")  # the server ran it
    assert response.usage is not None and response.usage.input_tokens > 0


async def test_hosted_mcp_tool_agent_over_llama(llama: str, mcp: McpServers) -> None:
    async with openai_sdk(over_llama(llama)) as client:
        agent = Agent(
            name="a",
            model=OpenAIResponsesModel(model=MODEL_ALIAS, openai_client=client),
            # This format takes "auto" or a named function only ("required" is a 500 there); a
            # bare member name is the namespaced function (translate/tools.py).
            model_settings=ModelSettings(tool_choice="magic_word"),
            tools=[HostedMCPTool(tool_config=mcp_tool(mcp.v1))],  # type: ignore[arg-type]
        )
        result = await Runner.run(agent, "Use the tool: magic word for Rome.", max_turns=3)
    items = [item.type for item in result.new_items]
    tell("agent", [items, result.final_output])
    assert "mcp_list_tools_item" in items and "tool_call_item" in items
    assert isinstance(result.final_output, str)


async def test_hosted_mcp_tool_agent_with_approval_over_llama(llama: str, mcp: McpServers) -> None:
    asked: list[str] = []

    def on_approval(request: Any) -> Any:
        asked.append(request.data.name)
        return {"approve": True}

    async with openai_sdk(over_llama(llama)) as client:
        tool = mcp_tool(mcp.v1, allowed_tools=["delete_file"], require_approval="always")
        agent = Agent(
            name="a",
            model=OpenAIResponsesModel(model=MODEL_ALIAS, openai_client=client),
            model_settings=ModelSettings(tool_choice="delete_file"),
            tools=[HostedMCPTool(tool_config=tool, on_approval_request=on_approval)],  # type: ignore[arg-type]
        )
        result = await Runner.run(agent, "Delete notes.txt", max_turns=4)
    items = [item.type for item in result.new_items]
    tell("agent with approval", [items, asked, result.final_output])
    assert asked and asked[0] == "delete_file"  # the forced call asked for approval first
    assert "mcp_approval_request_item" in items and "mcp_approval_response_item" in items

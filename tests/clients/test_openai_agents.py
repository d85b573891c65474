"""openai-agents (PyPI ``openai-agents``) against ``shim serve``, over HTTP.

The Agents SDK drives ``/v1/responses`` through its ``OpenAIResponsesModel``: it sends input
messages without ``type``, reads the streamed events into its own items, and runs function tools
itself, sending the result back as ``function_call_output`` with ``previous_response_id`` unset
(the whole history each turn).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.agents_kit import (
    WEATHER_CALLS,
    Agent,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    agents,
    get_weather,
    models_over,
)
from tests.clients.conftest import LlamaFunctions, ShimServer
from tests.clients.scripted_shell import COMMAND, EXPECTED_OUTPUT, PATCH_DIFF, PATCH_PATH
from tests.support import scripted_chat


@pytest.fixture
async def model_for() -> AsyncIterator[Any]:
    async with models_over(OpenAIResponsesModel) as build:
        yield build


async def test_length_cut_over_llama_is_incomplete(shim_llama: ShimServer, model_for: Any) -> None:
    """The base model never stops on its own: the shim reports the cut as ``incomplete``
    (``max_output_tokens``), which the Agents SDK refuses as a final answer."""
    agent = Agent(
        name="terse",
        instructions="Answer in one short sentence.",
        model=model_for(shim_llama),
        model_settings=ModelSettings(max_tokens=8, temperature=0),
    )
    with pytest.raises(agents.exceptions.ModelBehaviorError) as caught:
        await Runner.run(agent, "What is the capital of France?")
    assert "response.incomplete" in str(caught.value)
    assert "max_output_tokens" in str(caught.value)


async def test_forced_tool_streamed_over_llama(shim_llama: ShimServer, model_for: Any) -> None:
    """Over the real model, streamed: ``tool_choice`` forces the call (llama honours a forced
    choice), the SDK parses the streamed call, runs the tool and stops there
    (``stop_on_first_tool``: a text turn would never complete with this base model)."""
    agent = Agent(
        name="weather",
        tools=[get_weather],
        tool_use_behavior="stop_on_first_tool",
        model=model_for(shim_llama),
        model_settings=ModelSettings(tool_choice="get_weather", max_tokens=48, temperature=0),
    )
    result = Runner.run_streamed(agent, "What is the weather in Paris?")
    kinds = [e.data.type async for e in result.stream_events() if e.type == "raw_response_event"]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.done" in kinds
    assert len(WEATHER_CALLS) == 1
    assert result.final_output == f"Sunny and 21 C in {WEATHER_CALLS[0]}"
    (raw,) = result.raw_responses
    (call,) = raw.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments)["city"] == WEATHER_CALLS[0]


async def test_function_tool_round_trip_over_llama(
    shim_llama_functions: LlamaFunctions, model_for: Any
) -> None:
    """Over the real model in the function-calling format (no forced choice): the model calls
    ``get_weather`` itself, the SDK runs it and sends the output back with the whole history,
    and the route's loop guard (``tool_choice: "none"``) makes the model answer in text, which
    the route's stop sequence ends. The proxy shows the output reached llama as the call's
    ``tool`` message."""
    proxy = shim_llama_functions.proxy
    proxy.clear()
    agent = Agent(name="weather", tools=[get_weather], model=model_for(shim_llama_functions.shim))
    result = await Runner.run(agent, "Use functions.get_weather for: Paris")
    assert len(WEATHER_CALLS) == 1, result.new_items
    calls = [i for i in result.new_items if i.type == "tool_call_item"]
    outputs = [i for i in result.new_items if i.type == "tool_call_output_item"]
    assert len(calls) == 1 and len(outputs) == 1
    assert json.loads(calls[0].raw_item.arguments)["city"] == WEATHER_CALLS[0]
    assert isinstance(result.final_output, str)
    assert [r.output[-1].type for r in result.raw_responses] == ["function_call", "message"]
    first, second = proxy.bodies
    assert first["tool_choice"] == "auto" and second["tool_choice"] == "none"
    (call,) = second["messages"][-2]["tool_calls"]
    tool = second["messages"][-1]
    assert tool == {"role": "tool", "tool_call_id": call["id"], "content": outputs[0].output}


async def test_function_tool_round_trip_over_scripted(shim_scripted: ShimServer, model_for: Any) -> None:
    """The scripted upstream calls the offered tool (the shim is under test, not the model);
    the Agents SDK runs it and sends its output back; the model then answers in text."""
    agent = Agent(name="weather", tools=[get_weather], model=model_for(shim_scripted))
    result = await Runner.run(agent, "What is the weather in Paris?")
    assert WEATHER_CALLS == ["San Francisco"]
    calls = [i for i in result.new_items if i.type == "tool_call_item"]
    outputs = [i for i in result.new_items if i.type == "tool_call_output_item"]
    assert len(calls) == 1 and len(outputs) == 1
    assert json.loads(calls[0].raw_item.arguments) == {"city": "San Francisco"}
    # The scripted model echoes the last text it read: the tool output made it upstream.
    assert result.final_output == f"{scripted_chat.ANSWER} You said: Sunny and 21 C in San Francisco"
    assert len(result.raw_responses) == 2


class FolderEditor:
    """The Agents SDK's ``ApplyPatchEditor`` over one folder, applying V4A diffs with the SDK's
    own ``apply_diff``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def create_file(self, operation: agents.ApplyPatchOperation) -> agents.ApplyPatchResult:
        path = self.root / operation.path
        path.write_text(agents.apply_diff("", operation.diff or "", mode="create"))
        return agents.ApplyPatchResult(status="completed", output=f"Created {operation.path}")

    def update_file(self, operation: agents.ApplyPatchOperation) -> agents.ApplyPatchResult:
        path = self.root / operation.path
        path.write_text(agents.apply_diff(path.read_text(), operation.diff or ""))
        return agents.ApplyPatchResult(status="completed", output=f"Updated {operation.path}")

    def delete_file(self, operation: agents.ApplyPatchOperation) -> agents.ApplyPatchResult:
        (self.root / operation.path).unlink()
        return agents.ApplyPatchResult(status="completed", output=f"Deleted {operation.path}")


async def test_apply_patch_tool_over_scripted(
    shim_scripted: ShimServer, model_for: Any, tmp_path: Path
) -> None:
    """``ApplyPatchTool`` sends the built-in ``apply_patch`` tool; the shim offers it upstream as a
    function taking the operation, raises the scripted model's call back to an
    ``apply_patch_call``, the SDK's editor creates the file, and its ``apply_patch_call_output``
    goes back upstream as the call's tool message, which the answer quotes."""
    agent = Agent(
        name="editor",
        tools=[agents.ApplyPatchTool(editor=FolderEditor(tmp_path))],
        model=model_for(shim_scripted),
    )
    result = await Runner.run(agent, "Leave a note in notes.md.")
    assert (tmp_path / PATCH_PATH).read_text() == "shim was here"  # apply_diff drops the last newline
    (call,) = [i.raw_item for i in result.new_items if i.type == "tool_call_item"]
    call = call if isinstance(call, dict) else call.model_dump()
    assert call["type"] == "apply_patch_call"
    assert call["operation"] == {"type": "create_file", "path": PATCH_PATH, "diff": PATCH_DIFF}
    assert result.final_output == f"{scripted_chat.ANSWER} You said: completed: Created {PATCH_PATH}"


async def _run_shell(request: agents.ShellCommandRequest) -> agents.ShellResult:
    outputs = []
    for command in request.data.action.commands:
        proc = await asyncio.create_subprocess_shell(
            command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await proc.communicate()
        outputs.append(
            agents.ShellCommandOutput(
                stdout=stdout.decode(),
                stderr=stderr.decode(),
                outcome=agents.ShellCallOutcome(type="exit", exit_code=proc.returncode),
                command=command,
            )
        )
    return agents.ShellResult(output=outputs)


async def test_shell_tool_over_scripted(shim_scripted: ShimServer, model_for: Any) -> None:
    """``ShellTool`` (local): the scripted model's call to the lowered ``shell`` function comes
    back as a ``shell_call``, the SDK runs the command, its ``shell_call_output`` reaches the
    upstream as text (exit code, stdout) and the answer quotes it."""
    agent = Agent(name="shell", tools=[agents.ShellTool(executor=_run_shell)], model=model_for(shim_scripted))
    result = Runner.run_streamed(agent, "Print the magic number.")
    kinds = [e.data.type async for e in result.stream_events() if e.type == "raw_response_event"]
    assert kinds.count("response.completed") == 2
    (call,) = [i.raw_item for i in result.new_items if i.type == "tool_call_item"]
    call = call if isinstance(call, dict) else call.model_dump()
    assert call["type"] == "shell_call" and call["action"]["commands"] == [COMMAND]
    assert isinstance(result.final_output, str)
    assert result.final_output.startswith(f"{scripted_chat.ANSWER} You said: exit code 0")
    assert EXPECTED_OUTPUT in result.final_output

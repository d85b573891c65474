"""A history holding any input item type of the Responses API goes through: 200, never a 400.

Clients resend their whole history, so one refused item would poison every later turn of the
thread. The table has one row per input item type (openai-python 3.63's
``ResponseInputItemParam``) with what the upstream gets and the diagnostics the shim reports:
client-executed calls replay as ``tool_calls`` + ``tool`` messages, hosted tools' items as text
or dropped (reported either way), ``additional_tools`` adds its tools.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai.types.responses import ResponseInputItemParam
from pydantic import TypeAdapter

from tests.server.harness import Shim

PATCH = "*** Begin Patch\n*** Add File: a.txt\n+a\n*** End Patch\n"

# (item type, the items, the diagnostics header, what the upstream sees of them)
ROWS: list[tuple[str, list[dict[str, Any]], str | None, list[str]]] = [
    ("message (easy)", [{"role": "assistant", "content": "Earlier answer."}], None, ["assistant"]),
    (
        "message",
        [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]}],
        None,
        ["developer"],
    ),
    (
        "message (output)",
        [
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hello.", "annotations": []}],
            }
        ],
        None,
        ["assistant"],
    ),
    (
        "file_search_call",
        [
            {
                "type": "file_search_call",
                "id": "fs_1",
                "queries": ["shim"],
                "status": "completed",
                "results": [
                    {"file_id": "file_1", "filename": "a.md", "score": 0.9, "text": "A shim fills gaps."}
                ],
            }
        ],
        "lossy_value:input[1]",
        ["assistant"],
    ),
    (
        "computer_call + computer_call_output",
        [
            {
                "type": "computer_call",
                "id": "cu_1",
                "call_id": "call_cu1",
                "action": {"type": "click", "button": "left", "x": 1, "y": 2},
                "pending_safety_checks": [],
                "status": "completed",
            },
            {
                "type": "computer_call_output",
                "call_id": "call_cu1",
                "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AA=="},
            },
        ],
        "unsupported_item:input[1]; unsupported_item:input[2]",
        [],
    ),
    (
        "web_search_call",
        [
            {
                "type": "web_search_call",
                "id": "ws_1",
                "status": "completed",
                "action": {"type": "search", "query": "shim"},
            }
        ],
        "lossy_value:input[1]",
        ["assistant"],
    ),
    (
        "function_call + function_call_output",
        [
            {"type": "function_call", "call_id": "call_f1", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_f1", "output": "noon"},
        ],
        None,
        ["assistant:get_time", "tool"],
    ),
    (
        "tool_search_call + tool_search_output",
        [
            {
                "type": "tool_search_call",
                "arguments": {"query": "time"},
                "id": "ts_1",
                "call_id": "call_ts1",
                "execution": "server",
                "status": "completed",
            },
            {
                "type": "tool_search_output",
                "id": "tso_1",
                "call_id": "call_ts1",
                "execution": "server",
                "status": "completed",
                "tools": [],
            },
        ],
        "unsupported_item:input[1]; unsupported_item:input[2]",
        [],
    ),
    (
        "additional_tools",
        [
            {
                "type": "additional_tools",
                "role": "developer",
                "tools": [
                    {"type": "function", "name": "extra", "parameters": {"type": "object", "properties": {}}}
                ],
            }
        ],
        None,
        [],
    ),
    (
        "configuration_update",
        [{"type": "configuration_update", "id": "cfg_1", "reasoning": {"effort": "low"}}],
        "unsupported_item:input[1]",
        [],
    ),
    (
        "reasoning",
        [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Thinking."}]},
            {"type": "message", "role": "assistant", "content": "Done thinking."},
        ],
        None,
        ["assistant"],
    ),
    (
        "image_generation_call",
        [{"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "AA=="}],
        "unsupported_item:input[1]",
        [],
    ),
    (
        "code_interpreter_call",
        [
            {
                "type": "code_interpreter_call",
                "id": "ci_1",
                "status": "completed",
                "container_id": "cntr_1",
                "code": "print(6*7)",
                "outputs": [{"type": "logs", "logs": "42"}],
            }
        ],
        "lossy_value:input[1]",
        ["assistant"],
    ),
    (
        "local_shell_call + local_shell_call_output",
        [
            {
                "type": "local_shell_call",
                "id": "lsh_1",
                "call_id": "call_ls1",
                "status": "completed",
                "action": {"type": "exec", "command": ["ls"], "env": {}},
            },
            {"type": "local_shell_call_output", "id": "call_ls1", "output": "a.txt\n"},
        ],
        None,
        ["assistant:local_shell", "tool"],
    ),
    (
        "shell_call + shell_call_output",
        [
            {"type": "shell_call", "call_id": "call_sh1", "action": {"commands": ["ls"]}},
            {
                "type": "shell_call_output",
                "call_id": "call_sh1",
                "output": [{"stdout": "a.txt\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}],
            },
        ],
        None,
        ["assistant:shell", "tool"],
    ),
    (
        "apply_patch_call + apply_patch_call_output",
        [
            {
                "type": "apply_patch_call",
                "call_id": "call_ap1",
                "status": "completed",
                "operation": {"type": "create_file", "path": "a.txt", "diff": "+a\n"},
            },
            {"type": "apply_patch_call_output", "call_id": "call_ap1", "status": "completed"},
        ],
        None,
        ["assistant:apply_patch", "tool"],
    ),
    (
        "mcp_list_tools",
        [
            {
                "type": "mcp_list_tools",
                "id": "mcpl_1",
                "server_label": "demo",
                "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
            }
        ],
        "unsupported_item:input[1]",
        [],
    ),
    (
        "mcp_approval_request + mcp_approval_response",
        [
            {
                "type": "mcp_approval_request",
                "id": "mcpr_1",
                "server_label": "demo",
                "name": "lookup",
                "arguments": "{}",
            },
            {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": True},
        ],
        "unsupported_item:input[1]; unsupported_item:input[2]",
        [],
    ),
    (
        "mcp_call",
        [
            {
                "type": "mcp_call",
                "id": "mcp_1",
                "server_label": "demo",
                "name": "lookup",
                "arguments": '{"word":"shim"}',
                "output": "a thin piece of material",
            }
        ],
        "lossy_value:input[1]",
        ["assistant"],
    ),
    (
        "custom_tool_call + custom_tool_call_output",
        [
            {"type": "custom_tool_call", "call_id": "call_ct1", "name": "apply_patch", "input": PATCH},
            {"type": "custom_tool_call_output", "call_id": "call_ct1", "output": "Done."},
        ],
        None,
        ["assistant:apply_patch", "tool"],
    ),
    ("compaction_trigger", [{"type": "compaction_trigger"}], "unsupported_item:input[1]", []),
    (
        "program + program_output",
        [
            {"type": "program", "id": "prg_1", "call_id": "call_p1", "code": "return 1", "fingerprint": "fp"},
            {
                "type": "program_output",
                "id": "prgo_1",
                "call_id": "call_p1",
                "result": "1",
                "status": "completed",
            },
        ],
        "lossy_value:input[1]; lossy_value:input[2]",
        ["assistant", "assistant"],
    ),
]

_ITEM = TypeAdapter(ResponseInputItemParam)


def _seen(messages: list[dict[str, Any]]) -> list[str]:
    """What the upstream got between the two user messages: roles (and called functions)."""
    out = []
    for m in messages[1:-1]:
        calls = m.get("tool_calls") or []
        out.append(m["role"] + "".join(f":{c['function']['name']}" for c in calls))
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("kind", "items", "header", "seen"), ROWS, ids=[row[0] for row in ROWS])
async def test_every_input_item_type_goes_through(
    client: httpx.AsyncClient,
    shim: Shim,
    kind: str,
    items: list[dict[str, Any]],
    header: str | None,
    seen: list[str],
    stream: bool,
) -> None:
    for item in items:
        _ITEM.validate_python(item)  # each row is a real input item of openai-python's types
    body = {
        "model": "m",
        "stream": stream,
        "input": [
            {"role": "user", "content": "Start."},
            *items,
            {"role": "user", "content": "Go on."},
        ],
    }
    response = await client.post("/v1/responses", json=body)
    assert response.status_code == 200, response.text
    assert response.headers.get("x-shim-diagnostics") == header
    sent = shim.upstream.bodies[-1]
    assert _seen(sent["messages"]) == seen, sent["messages"]
    if kind == "additional_tools":
        assert [t["function"]["name"] for t in sent["tools"]] == ["extra"]


async def test_a_thread_holding_every_type_continues(client: httpx.AsyncClient, shim: Shim) -> None:
    """All rows in one history, stored, then continued by ``previous_response_id`` with an
    ``item_reference`` to an item of the stored turn: the stored history (hosted items kept
    whole) is read back and the thread goes on."""
    items = [item for _, row, _, _ in ROWS for item in row]
    first = await client.post(
        "/v1/responses",
        json={
            "model": "m",
            "input": [{"role": "user", "content": "Start."}, *items, {"role": "user", "content": "Hi"}],
        },
    )
    assert first.status_code == 200, first.text
    resource = first.json()
    answer_id = resource["output"][-1]["id"]
    second = await client.post(
        "/v1/responses",
        json={
            "model": "m",
            "previous_response_id": resource["id"],
            "input": [{"type": "item_reference", "id": answer_id}, {"role": "user", "content": "And then?"}],
        },
    )
    assert second.status_code == 200, second.text
    messages = shim.upstream.bodies[-1]["messages"]
    assert messages[-1] == {"role": "user", "content": "And then?"}
    assert json.dumps(messages).count("Called MCP tool lookup on server demo") == 1


async def test_an_item_type_the_shim_does_not_know_is_reported_not_refused(
    client: httpx.AsyncClient, shim: Shim
) -> None:
    """A type newer than this shim (not in openai-python 3.63) is dropped with a diagnostic."""
    body = {
        "model": "m",
        "input": [
            {"role": "user", "content": "Start."},
            {"type": "no_such_item", "id": "x_1", "status": "completed"},
            {"role": "user", "content": "Go on."},
        ],
    }
    response = await client.post("/v1/responses", json=body)
    assert response.status_code == 200, response.text
    assert response.headers.get("x-shim-diagnostics") == "unsupported_item:input[1]"
    assert _seen(shim.upstream.bodies[-1]["messages"]) == []

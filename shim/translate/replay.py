"""History items of every Responses type, replayed to a Chat upstream.

Clients resend their whole history, so an item the shim refused once would fail every later
turn of that thread. Nothing here raises:

* calls the client executed (``custom_tool_call``, ``apply_patch_call``, ``shell_call``,
  ``local_shell_call``, a namespaced ``function_call``) become assistant ``tool_calls`` under the
  function name the lowering table gives them (``shim.translate.tools``), with the arguments
  the lowered function takes; their ``*_output`` items become ``tool`` messages (text);
* items of hosted tools this shim does not run (``web_search_call``, ``mcp_call``,
  ``code_interpreter_call``…) are replayed as an assistant's text note when they carry
  something the model can use, else dropped; either way with a diagnostic.
"""

from __future__ import annotations

import json
from typing import Any

from shim.translate.tools import Kind, ToolTable
from shim.wire import responses as r

__all__ = ["ClientCallItem", "ClientOutputItem", "call_of", "hosted_text", "output_of"]

ClientCallItem = (
    r.FunctionCallItemParam
    | r.CustomToolCallItemParam
    | r.ApplyPatchCallItemParam
    | r.ShellCallItemParam
    | r.LocalShellCallItemParam
)
ClientOutputItem = (
    r.FunctionCallOutputItemParam
    | r.CustomToolCallOutputItemParam
    | r.ApplyPatchCallOutputItemParam
    | r.ShellCallOutputItemParam
    | r.LocalShellCallOutputItemParam
)


def _dump(value: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in value.items() if v is not None}, ensure_ascii=False)


def call_of(item: ClientCallItem, table: ToolTable) -> tuple[str, str, str]:
    """``(call_id, function name, arguments)`` of a client-executed call, as lowered."""
    kind: Kind
    if isinstance(item, r.FunctionCallItemParam):
        if item.namespace is None:
            return item.call_id, item.name, item.arguments
        return item.call_id, table.replay_name("function", item.name, item.namespace), item.arguments
    if isinstance(item, r.CustomToolCallItemParam):
        name = table.replay_name("custom", item.name, item.namespace)
        return item.call_id, name, json.dumps({"input": item.input}, ensure_ascii=False)
    if isinstance(item, r.ApplyPatchCallItemParam):
        op = item.operation
        kind, args = "apply_patch", _dump({"type": op.type, "path": op.path, "diff": op.diff})
    elif isinstance(item, r.ShellCallItemParam):
        action = item.action
        kind = "shell"
        args = _dump(
            {
                "commands": action.commands,
                "timeout_ms": action.timeout_ms,
                "max_output_length": action.max_output_length,
            }
        )
    else:
        local = item.action
        kind = "local_shell"
        args = _dump(
            {
                "command": local.command,
                "working_directory": local.working_directory,
                "timeout_ms": local.timeout_ms,
                "env": local.env or None,
            }
        )
    return item.call_id, table.replay_name(kind, kind), args


def _shell_text(item: r.ShellCallOutputItemParam) -> str:
    blocks: list[str] = []
    for chunk in item.output:
        lines: list[str] = []
        outcome = chunk.outcome
        if outcome is not None:
            lines.append("timed out" if outcome.type == "timeout" else f"exit code {outcome.exit_code}")
        if chunk.stdout:
            lines.append(f"stdout:\n{chunk.stdout}")
        if chunk.stderr:
            lines.append(f"stderr:\n{chunk.stderr}")
        blocks.append("\n".join(lines) or "(no output)")
    return "\n\n".join(blocks) or "(no output)"


def output_of(item: ClientOutputItem) -> tuple[str, str | list[r.ContentPart]]:
    """``(call_id, tool message content)`` of a client tool's output."""
    if isinstance(item, r.FunctionCallOutputItemParam | r.CustomToolCallOutputItemParam):
        return item.call_id, item.output
    if isinstance(item, r.ApplyPatchCallOutputItemParam):
        status = item.status or "completed"
        return item.call_id, f"{status}: {item.output}" if item.output else status
    if isinstance(item, r.ShellCallOutputItemParam):
        return item.call_id, _shell_text(item)
    return item.call_id or item.id, item.output


# ---------------------------------------------------------------------------- hosted items


def _text_of(value: Any, limit: int = 4000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def _mcp_call(item: dict[str, Any]) -> str | None:
    result = item.get("output") if item.get("output") is not None else item.get("error")
    head = f"Called MCP tool {item.get('name')!s} on server {item.get('server_label')!s}"
    args = item.get("arguments")
    head += f" with arguments {_text_of(args)}" if args else ""
    return f"{head}. Result: {_text_of(result)}" if result is not None else f"{head}."


def _code_interpreter(item: dict[str, Any]) -> str | None:
    code = item.get("code")
    if not code:
        return None
    logs = [str(o["logs"]) for o in item.get("outputs") or () if isinstance(o, dict) and o.get("logs")]
    text = f"Ran code:\n{_text_of(code)}"
    return text + (f"\nOutput:\n{_text_of(chr(10).join(logs))}" if logs else "")


def _web_search(item: dict[str, Any]) -> str | None:
    action = item.get("action")
    query = (action.get("query") or action.get("url")) if isinstance(action, dict) else None
    return f"Searched the web for: {query}" if query else None


def _file_search(item: dict[str, Any]) -> str | None:
    queries = item.get("queries") or []
    results = [str(x["text"]) for x in item.get("results") or () if isinstance(x, dict) and x.get("text")]
    if not queries and not results:
        return None
    text = f"Searched files for: {', '.join(map(str, queries))}"
    return text + (f"\nFound:\n{_text_of(chr(10).join(results))}" if results else "")


def _program(item: dict[str, Any]) -> str | None:
    return f"Ran a program:\n{_text_of(item.get('code'))}" if item.get("code") else None


def _program_output(item: dict[str, Any]) -> str | None:
    return f"Program result: {_text_of(item.get('result'))}" if item.get("result") is not None else None


_RENDER = {
    "mcp_call": _mcp_call,
    "code_interpreter_call": _code_interpreter,
    "web_search_call": _web_search,
    "file_search_call": _file_search,
    "program": _program,
    "program_output": _program_output,
}


def hosted_text(item: dict[str, Any]) -> str | None:
    """What a hosted tool's item tells the model, as text; ``None``: nothing to replay (an
    image, a screenshot, a tool listing, an approval, a compaction trigger…)."""
    render = _RENDER.get(str(item.get("type")))
    return render(item) if render is not None else None

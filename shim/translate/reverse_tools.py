"""Client-executed tool calls for Chat clients over an Open Responses upstream.

The reverse of ``shim.translate.tools``. A Chat client knows function tools and ``custom``
tools; an Open Responses upstream may answer with any client-executed call item:

* ``custom_tool_call`` → a Chat ``custom`` tool call (``{name, input}``), announced by
  ``CustomCallStartDelta`` so the Chat writer writes that type; the client's ``custom`` tools,
  calls and named choices go upstream as Open Responses ``custom`` ones;
* ``apply_patch_call``, ``shell_call``, ``local_shell_call`` and a namespaced ``function_call``
  → a Chat function call under the name and with the arguments ``tools.py`` lowers them to
  (``apply_patch`` with the operation, ``shell`` with the action, ``<namespace>__<name>``);
* the Chat client's ``tool`` message answering one of those goes back as the matching
  ``*_output`` item (``native_output``). A call is recognised by its lowered name when the
  client declared no function of that name itself.
"""

from __future__ import annotations

from typing import Any, Literal

from shim.core.deltas import Delta, ToolCallArgsDelta, ToolCallStartDelta
from shim.translate.history import client_call_input
from shim.translate.replay import call_of
from shim.translate.tools import Lowered, ToolTable, raise_call
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = ["CustomCallStartDelta", "NativeKind", "call_deltas", "custom_tool", "native_call", "native_output"]

NativeKind = Literal["custom", "apply_patch", "shell", "local_shell"]
_NATIVE: dict[str, NativeKind] = {
    "apply_patch": "apply_patch",
    "shell": "shell",
    "local_shell": "local_shell",
}
_EMPTY = ToolTable()


class CustomCallStartDelta(ToolCallStartDelta, frozen=True, tag="custom_call_start"):
    """A call to a ``custom`` tool starts: its arguments deltas are the free-form input."""


def call_deltas(item: r.ItemField, index: int) -> list[Delta] | None:
    """A client-executed call item as the deltas of a Chat tool call; ``None``: not one."""
    if isinstance(item, r.CustomToolCall):
        return [CustomCallStartDelta(index, item.call_id, item.name), ToolCallArgsDelta(index, item.input)]
    if isinstance(item, r.FunctionCall) and isinstance(item.namespace, str):
        name = _EMPTY.replay_name("function", item.name, item.namespace)
        return [ToolCallStartDelta(index, item.call_id, name), ToolCallArgsDelta(index, item.arguments)]
    if isinstance(item, r.ApplyPatchCall | r.ShellCall | r.LocalShellCall):
        call_id, name, arguments = call_of(client_call_input(item), _EMPTY)
        return [ToolCallStartDelta(index, call_id, name), ToolCallArgsDelta(index, arguments)]
    return None


def native_call(
    call_id: str, name: str, arguments: str, declared: set[str]
) -> tuple[r.ItemParam, NativeKind | None]:
    """A Chat function call from the client's history, as the item the upstream produced:
    a lowered ``apply_patch``/``shell``/``local_shell`` call (the client declared no function of
    that name) goes back as its native item, anything else as a ``function_call``."""
    kind = _NATIVE.get(name) if name not in declared else None
    if kind is not None:
        raised = raise_call(
            Lowered(kind, name, name),
            item_id=call_id,
            call_id=call_id,
            arguments=arguments,
            status="completed",
        )
        if isinstance(raised, r.ApplyPatchCall | r.ShellCall | r.LocalShellCall):
            param = client_call_input(raised)
            param.id = None  # an id the upstream never issued must not be sent as one
            return param, kind
    return r.FunctionCallItemParam(call_id=call_id, name=name, arguments=arguments), None


def _text(output: str | list[r.ContentPart]) -> str:
    if isinstance(output, str):
        return output
    return "".join(getattr(part, "text", "") for part in output)


def native_output(call_id: str, kind: NativeKind | None, output: str | list[r.ContentPart]) -> r.ItemParam:
    """The Chat ``tool`` message answering a call of ``kind``, as the matching output item."""
    if kind == "custom":
        return r.CustomToolCallOutputItemParam(call_id=call_id, output=output)
    if kind == "apply_patch":
        return r.ApplyPatchCallOutputItemParam(call_id=call_id, status="completed", output=_text(output))
    if kind == "shell":
        # A Chat client answers with text only: it is the output, with no exit status to claim.
        return r.ShellCallOutputItemParam(
            call_id=call_id, output=[r.ShellOutputContent(stdout=_text(output))]
        )
    if kind == "local_shell":
        return r.LocalShellCallOutputItemParam(id=call_id, call_id=call_id, output=_text(output))
    return r.FunctionCallOutputItemParam(call_id=call_id, output=output)


def custom_tool(tool: c.ChatCompletionCustomToolParam) -> dict[str, Any]:
    """A Chat ``custom`` tool as the Open Responses one (the grammar's fields flattened)."""
    custom = tool.custom
    out: dict[str, Any] = {"type": "custom", "name": custom.name}
    if custom.description is not None:
        out["description"] = custom.description
    fmt = custom.format
    if isinstance(fmt, c.CustomFormatGrammar):
        out["format"] = {
            "type": "grammar",
            "syntax": fmt.grammar.syntax,
            "definition": fmt.grammar.definition,
        }
    elif fmt is not None:
        out["format"] = {"type": "text"}
    return out

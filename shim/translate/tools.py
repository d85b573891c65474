"""Client-executed tool types over Chat upstreams: one lowering table, used both ways.

A Chat Completions upstream knows only function tools. Every Responses tool type the *client*
executes is offered upstream as a plain function with a JSON schema, and the upstream's call to
that function is raised back to the native item:

=============== ============================================ ======================================
Responses tool  Chat function offered upstream               raised as
=============== ============================================ ======================================
``function``    itself, name unchanged                       ``function_call``
``namespace``   one function per member, ``<ns>__<name>``    ``function_call`` with ``namespace`` and
                                                             the bare ``name`` (``custom_tool_call``
                                                             for a custom member)
``custom``      ``{input: string}``, the grammar or format   ``custom_tool_call {call_id,name,input}``
                shown in the description
``apply_patch`` ``{type, path, diff}`` (the operation)       ``apply_patch_call``
``shell``       ``{commands, timeout_ms, max_output_length}`` ``shell_call``
``local_shell`` ``{command, working_directory, timeout_ms,    ``local_shell_call``
                env}``
=============== ============================================ ======================================

The table is built from the tools alone, deterministically, so the request writer (from the
request) and the response writer (from the echoed tools) agree without sharing state. Plain
function tools keep their names; a lowered name that collides with one taken earlier, is longer
than the 64 characters most upstreams allow, or has characters they refuse, becomes a prefix
plus a hash of what it stands for. A call whose arguments cannot form the native item (a small
model's broken JSON) is kept as a ``function_call`` under the lowered name: the client answers it
like any unknown function, and nothing is invented.

Hosted tools (``web_search``, ``mcp``, ``computer``…) have no honest Chat form: they stay a
diagnostic (``unsupported_tool``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import msgspec
from msgspec import UNSET

from shim.core.diagnostics import Diagnostics
from shim.errors import InvalidRequest
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = [
    "Lowered",
    "ToolTable",
    "client_tools",
    "echo_tools",
    "fitting_call_id",
    "lower_tools",
    "raise_call",
]

Kind = Literal["function", "custom", "apply_patch", "shell", "local_shell"]
Tool = r.ClientToolParam | r.ToolField

MAX_NAME = 64  # OpenAI's limit on function names, enforced by most Chat upstreams
_BAD = re.compile(r"[^A-Za-z0-9_-]")
# Tool types kept: function, custom, namespace, apply_patch, shell, local_shell (see ClientToolParam).
_CLIENT_TYPES = frozenset(t.__struct_config__.tag for t in r.ClientToolParam.__args__)
_CLIENT_CLASSES: dict[str, Any] = {t.__struct_config__.tag: t for t in r.ClientToolParam.__args__}


def _typed_tool(tool: dict[str, Any], kind: str) -> r.ClientToolParam:
    """``tool`` as its class, chosen by its tag: ``msgspec.convert`` to the union builds the
    union's type information on every call (6 us a tool, ten times one class's; a hosted
    response converts its namespace four times: bench/README.md, issue 18). A tool the class
    refuses is converted to the union again, for the union's own error message."""
    typed: r.ClientToolParam
    try:
        typed = msgspec.convert(tool, _CLIENT_CLASSES[kind])
    except msgspec.ValidationError:
        typed = msgspec.convert(tool, r.ClientToolParam)
    return typed


_APPLY_PATCH_DESCRIPTION = (
    "Create, update or delete one file in the user's workspace. `type`: create_file, update_file "
    "or delete_file. `path`: the file's path. `diff`: for create_file, every line of the new file "
    "prefixed with '+'; for update_file, a V4A diff (hunks opened by '@@' and a context line, "
    "then lines prefixed with ' ' to keep, '-' to remove and '+' to add); unused for delete_file."
)
_APPLY_PATCH_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["create_file", "update_file", "delete_file"]},
        "path": {"type": "string"},
        "diff": {"type": "string"},
    },
    "required": ["type", "path"],
}
_SHELL_DESCRIPTION = (
    "Run shell commands on the user's machine and read their output. `commands`: the commands, "
    "run in order. `timeout_ms` and `max_output_length` (characters) are optional limits."
)
_SHELL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "commands": {"type": "array", "items": {"type": "string"}},
        "timeout_ms": {"type": "integer"},
        "max_output_length": {"type": "integer"},
    },
    "required": ["commands"],
}
_LOCAL_SHELL_DESCRIPTION = (
    "Run one command on the user's machine and read its output. `command`: the program and its "
    "arguments. `working_directory`, `timeout_ms` and `env` are optional."
)
_LOCAL_SHELL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}},
        "working_directory": {"type": "string"},
        "timeout_ms": {"type": "integer"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["command"],
}
_FIXED: dict[str, tuple[Kind, str, dict[str, Any]]] = {
    "apply_patch": ("apply_patch", _APPLY_PATCH_DESCRIPTION, _APPLY_PATCH_PARAMETERS),
    "shell": ("shell", _SHELL_DESCRIPTION, _SHELL_PARAMETERS),
    "local_shell": ("local_shell", _LOCAL_SHELL_DESCRIPTION, _LOCAL_SHELL_PARAMETERS),
}


class Lowered(msgspec.Struct, frozen=True):
    """One Chat function and the client tool it stands for."""

    kind: Kind
    function: str  # the name offered upstream
    name: str  # the name the client knows (the tool type for apply_patch/shell/local_shell)
    namespace: str | None = None


class ToolTable:
    """The lowering of one request's tools: Chat functions out, native calls back."""

    def __init__(self) -> None:
        self.functions: list[c.ChatCompletionFunctionToolParam] = []
        self.by_function: dict[str, Lowered] = {}
        self._by_native: dict[tuple[Kind, str | None, str], str] = {}

    def __bool__(self) -> bool:
        return bool(self.functions)

    def lowered(self, function: str) -> Lowered | None:
        """The client tool behind an upstream function name (None: not one of ours)."""
        return self.by_function.get(function)

    def function_for(self, kind: Kind, name: str, namespace: str | None = None) -> str | None:
        return self._by_native.get((kind, namespace, name))

    def replay_name(self, kind: Kind, name: str, namespace: str | None = None) -> str:
        """The function name a history call is replayed under: the offered one, or (the tool is
        no longer offered) the name it would get, so the model still reads what was called."""
        found = self.function_for(kind, name, namespace)
        if found is not None:
            return found
        return _lowered_name(name, namespace, (kind, namespace, name))

    def _add(
        self,
        lowered_kind: Kind,
        name: str,
        namespace: str | None,
        description: str | None,
        parameters: dict[str, Any] | None,
        strict: bool | None,
        *,
        keep_name: bool = False,
    ) -> None:
        key = (lowered_kind, namespace, name)
        if key in self._by_native:  # the same tool twice (e.g. in additional_tools again)
            return
        function = name if keep_name else _lowered_name(name, namespace, key)
        if function in self.by_function:  # taken earlier (a client's own name wins): hashed
            function = _lowered_name(name, namespace, key, hashed=True)
        n = 2
        base = function
        while function in self.by_function:  # a hash collision: deterministic all the same
            function = f"{base[: MAX_NAME - len(str(n)) - 1]}_{n}"
            n += 1
        self.by_function[function] = Lowered(lowered_kind, function, name, namespace)
        self._by_native[key] = function
        self.functions.append(
            c.ChatCompletionFunctionToolParam(
                function=c.FunctionDefinition(
                    name=function, description=description, parameters=parameters, strict=strict
                )
            )
        )


def _digest(key: tuple[str, str | None, str]) -> str:
    return hashlib.sha256("\0".join(k or "" for k in key).encode()).hexdigest()[:8]


def _lowered_name(
    name: str, namespace: str | None, key: tuple[str, str | None, str], *, hashed: bool = False
) -> str:
    """``<namespace>__<name>``. Upstreams take ``[A-Za-z0-9_-]{1,64}``: a name with other
    characters, too long, or taken gets a hash of what it stands for, and loses the end of its
    namespace before any of the tool's own name (the part the model reads)."""
    full = f"{namespace}__{name}" if namespace else name
    if not hashed and 0 < len(full) <= MAX_NAME and not _BAD.search(full):
        return full
    bare, ns = _BAD.sub("_", name), _BAD.sub("_", namespace or "")
    room = MAX_NAME - 9  # "_" and 8 hex digits
    keep = room - len(bare) - 2
    body = f"{ns[:keep]}__{bare}" if ns and keep > 0 else bare
    return f"{body[:room]}_{_digest(key)}"


def _custom_description(tool: r.CustomTool, namespace: r.NamespaceTool | None) -> str:
    fmt = tool.format
    if isinstance(fmt, r.CustomFormatGrammar):
        how = (
            f"Call it with one string argument `input`, written in this {fmt.syntax} grammar:\n"
            f"{fmt.definition}"
        )
    else:
        how = "Call it with one string argument `input`: the tool's free-form input text."
    return "\n\n".join(p for p in (tool.description, _in_namespace(namespace), how) if p)


def _in_namespace(namespace: r.NamespaceTool | None) -> str | None:
    if namespace is None or not namespace.description:
        return None
    return f"Part of {namespace.name}: {namespace.description}"


_CUSTOM_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string"}},
    "required": ["input"],
}


# As tuples made once: ``A | B`` in an ``isinstance`` builds a union object on every call (the
# lowering runs for every request with tools, twice a hosted round: bench/README.md, issue 18).
_FUNCTION_TOOLS = (r.FunctionToolParam, r.FunctionTool)
_FIXED_TOOLS = (r.ApplyPatchTool, r.ShellTool, r.LocalShellTool)


def _member(table: ToolTable, tool: Tool, namespace: r.NamespaceTool | None) -> None:
    ns = namespace.name if namespace else None
    if isinstance(tool, r.CustomTool):
        table._add("custom", tool.name, ns, _custom_description(tool, namespace), _CUSTOM_PARAMETERS, None)
    elif isinstance(tool, _FUNCTION_TOOLS):
        description = tool.description
        if namespace is not None:
            description = "\n\n".join(p for p in (description, _in_namespace(namespace)) if p) or None
        table._add("function", tool.name, ns, description, tool.parameters, tool.strict, keep_name=ns is None)


def lower_tools(tools: Sequence[Tool]) -> ToolTable:
    """The Chat functions for ``tools`` (typed: see ``client_tools``), in the request's order.
    Plain function tools are named first, so a lowered tool never takes a client's own name."""
    table = ToolTable()
    for tool in tools:
        if isinstance(tool, _FUNCTION_TOOLS):
            _member(table, tool, None)
    for tool in tools:
        if isinstance(tool, r.NamespaceTool):
            for member in tool.tools:
                _member(table, member, tool)
        elif isinstance(tool, r.CustomTool):
            _member(table, tool, None)
        elif isinstance(tool, _FIXED_TOOLS):
            kind, description, parameters = _FIXED[tool.__struct_config__.tag]  # type: ignore[index]
            table._add(kind, kind, None, description, parameters, None)
    return table


def client_tools(
    raw: Iterable[Any] | None, diags: Diagnostics, *, param: str = "tools"
) -> list[r.ClientToolParam]:
    """The request's tools the client executes, typed; every other one reported (hosted tools,
    ``computer``, a ``shell`` in a hosted container). A malformed client tool is a 400."""
    out: list[r.ClientToolParam] = []
    for i, tool in enumerate(raw or ()):
        where = f"{param}[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            raise InvalidRequest("Each tool needs a string `type`.", param=f"{where}.type")
        if kind not in _CLIENT_TYPES:
            diags.report("unsupported_tool", f"Tool type {kind!r} has no Chat Completions form.", param=where)
            continue
        try:
            typed = _typed_tool(tool, kind)
        except msgspec.ValidationError as exc:
            from shim.wire.responses_decode import validation_param

            sub = validation_param(exc)
            raise InvalidRequest(
                f"Invalid tool: {str(exc).split(' - at `', 1)[0]}",
                param=where + (f".{sub}" if sub else ""),
                code="invalid_value",
            ) from None
        if isinstance(typed, r.ShellTool) and (typed.environment or {}).get("type") not in (None, "local"):
            diags.report(
                "unsupported_tool",
                "A shell in a hosted container cannot run here.",
                param=f"{where}.environment",
            )
            continue
        out.append(typed)
    return out


def echo_tools(tools: Sequence[r.ClientToolParam]) -> list[r.ToolField]:
    """The tools as a ``ResponseResource`` echoes them (function tools with every field)."""
    out: list[r.ToolField] = []
    for tool in tools:
        if isinstance(tool, r.FunctionToolParam):
            out.append(
                r.FunctionTool(
                    name=tool.name,
                    description=tool.description,
                    parameters=tool.parameters,
                    strict=tool.strict,
                )
            )
        else:
            out.append(tool)
    return out


# ------------------------------------------------------------------------------------ raising


def _json_object(arguments: str) -> dict[str, Any] | None:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def custom_input(arguments: str) -> str:
    """The free-form input in a lowered custom call's arguments. A model that wrote the text
    itself instead of ``{"input": ...}`` is taken at its word."""
    args = _json_object(arguments)
    if args is not None:
        value = args.get("input")
        if isinstance(value, str):
            return value
        strings = [v for v in args.values() if isinstance(v, str)]
        if len(args) == 1 and strings:
            return strings[0]
    return arguments


MAX_CALL_ID = 64  # the spec's maxLength on call_id; this shim refuses a longer one as input


def fitting_call_id(call_id: str) -> str:
    """An upstream's tool-call id as a ``call_id`` the spec (and this shim, when the client
    sends it back) accepts. llama-cpp-python's ids hold the function name, so a lowered name
    makes them too long: a longer id keeps its start and gets a hash of the whole, the same
    every time (streamed and whole answers, replays)."""
    if len(call_id) <= MAX_CALL_ID:
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:16]
    return f"{call_id[: MAX_CALL_ID - len(digest) - 1]}_{digest}"


def raise_call(
    lowered: Lowered, *, item_id: str, call_id: str, arguments: str, status: r.Status
) -> r.ItemField | None:
    """The native item for an upstream call to a lowered function; ``None`` when the arguments
    cannot form it (the caller keeps the plain ``function_call``)."""
    done: Literal["in_progress", "completed"] = "in_progress" if status == "in_progress" else "completed"
    if lowered.kind == "function":
        return r.FunctionCall(
            id=item_id,
            call_id=call_id,
            name=lowered.name,
            arguments=arguments,
            status=status,
            namespace=lowered.namespace if lowered.namespace is not None else UNSET,
        )
    if lowered.kind == "custom":
        return r.CustomToolCall(
            id=item_id,
            call_id=call_id,
            name=lowered.name,
            input=custom_input(arguments),
            namespace=lowered.namespace if lowered.namespace is not None else UNSET,
        )
    args = _json_object(arguments)
    if args is None:
        return None
    if lowered.kind == "apply_patch":
        kind, path, diff = args.get("type"), args.get("path"), args.get("diff")
        if kind not in ("create_file", "update_file", "delete_file") or not isinstance(path, str) or not path:
            return None
        if kind != "delete_file" and not isinstance(diff, str):
            return None
        operation = r.ApplyPatchOperation(
            type=kind, path=path, diff=diff if kind != "delete_file" and isinstance(diff, str) else UNSET
        )
        return r.ApplyPatchCall(id=item_id, call_id=call_id, operation=operation, status=done)
    if lowered.kind == "shell":
        commands = _strings(args.get("commands", args.get("command")))
        if commands is None:
            return None
        action = r.ShellAction(
            commands=commands,
            timeout_ms=_int(args.get("timeout_ms")),
            max_output_length=_int(args.get("max_output_length")),
        )
        return r.ShellCall(id=item_id, call_id=call_id, action=action, status=status)
    command = _strings(args.get("command", args.get("commands")))
    if command is None:
        return None
    env = args.get("env")
    workdir = args.get("working_directory")
    local = r.LocalShellAction(
        command=command,
        env={k: v for k, v in env.items() if isinstance(v, str)} if isinstance(env, dict) else {},
        timeout_ms=_int(args.get("timeout_ms")),
        working_directory=workdir if isinstance(workdir, str) else None,
    )
    return r.LocalShellCall(id=item_id, call_id=call_id, action=local, status=status)


# ------------------------------------------------------------------------------- tool choice


def _targets(table: ToolTable, entry: r.SpecificToolParam) -> list[str]:
    """The upstream functions a named tool choice (or one ``allowed_tools`` entry) means."""
    if isinstance(entry, r.SpecificApplyPatchParam):
        found = table.function_for("apply_patch", "apply_patch")
        return [found] if found else []
    if isinstance(entry, r.SpecificShellParam):
        found = table.function_for("shell", "shell") or table.function_for("local_shell", "local_shell")
        return [found] if found else []
    if isinstance(entry, r.SpecificMcpParam):
        return []  # hosted MCP: this shim runs no MCP client
    kind: Kind = "custom" if isinstance(entry, r.SpecificCustomParam) else "function"
    plain = table.function_for(kind, entry.name)
    if plain is not None:
        return [plain]
    # A bare member name, a lowered name, or (allowed_tools) a whole namespace.
    members = [
        f for f, low in table.by_function.items() if low.namespace is not None and low.name == entry.name
    ]
    if members:
        return members[:1]
    if entry.name in table.by_function:
        return [entry.name]
    return [f for f, low in table.by_function.items() if low.namespace == entry.name]


def lower_tool_choice(
    choice: r.ToolChoice | None, table: ToolTable, diags: Diagnostics
) -> tuple[Any, list[c.ChatCompletionFunctionToolParam]]:
    """The Chat ``tool_choice`` and the functions to offer. ``allowed_tools`` is emulated for
    every upstream by offering only the allowed functions."""
    tools = table.functions
    if choice is None or isinstance(choice, str):
        return choice, tools
    if isinstance(choice, r.AllowedToolsParam):
        allowed: set[str] = set()
        for j, entry in enumerate(choice.tools):
            targets = _targets(table, entry)
            if not targets:
                diags.report(
                    "unsupported_tool",
                    "This allowed tool is not offered to the upstream.",
                    param=f"tool_choice.tools[{j}]",
                )
            allowed.update(targets)
        return choice.mode, [t for t in tools if t.function.name in allowed]
    targets = _targets(table, choice)
    if targets:
        return c.ChatCompletionNamedToolChoiceParam(function=c.ToolName(name=targets[0])), tools
    if isinstance(choice, r.SpecificFunctionParam):  # as before: the upstream judges the name
        return c.ChatCompletionNamedToolChoiceParam(function=c.ToolName(name=choice.name)), tools
    diags.report("unsupported_tool", "The chosen tool is not offered to the upstream.", param="tool_choice")
    return None, tools

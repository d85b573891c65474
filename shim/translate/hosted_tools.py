"""Hosted tools, sans-IO: which listed tools are offered, which need approval, how they are
offered to a Chat upstream, and how their items read back to the model.

A hosted MCP server's tools are offered as a ``namespace`` tool named by its ``server_label``
(so the upstream sees ``<label>__<tool>`` functions, ``translate/tools.py``), and web search as
the namespace ``web_search`` with one ``search(query)`` function. The upstream's call comes back
as a ``function_call`` with that ``namespace``; ``hosted_events.py`` turns it into the hosted
item. In a history, hosted items become what the model needs to read: an ``mcp_call`` or
``web_search_call`` a function call and its output, a declined approval request a call whose
output says so; tool lists and pending approvals nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shim.errors import InvalidRequest
from shim.wire import responses as r

__all__ = [
    "WEB_SEARCH",
    "HostedTool",
    "approval_outcomes",
    "declined_output",
    "model_history",
    "needs_approval",
    "offered",
]

WEB_SEARCH = "web_search"  # the namespace web search is offered under
_WEB_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to search the web for."}},
    "required": ["query"],
}


@dataclass
class HostedTool:
    """One hosted tool of a request: an MCP server (``label``) or web search."""

    kind: Literal["mcp", "web_search"]
    label: str
    raw: dict[str, Any]
    tools: list[r.McpToolInfo] = field(default_factory=list)  # as listed (mcp)

    def echo(self) -> r.ToolField:
        raw = self.raw
        if self.kind == WEB_SEARCH:
            size = raw.get("search_context_size")
            return r.WebSearchTool(search_context_size=size if isinstance(size, str) else None)
        url, allowed, approval = raw.get("server_url"), raw.get("allowed_tools"), raw.get("require_approval")
        description = raw.get("server_description")
        return r.McpTool(
            server_label=self.label,
            server_url=url if isinstance(url, str) else None,
            allowed_tools=allowed if isinstance(allowed, list | dict) else None,
            require_approval=approval if isinstance(approval, str | dict) else None,
            server_description=description if isinstance(description, str) else None,
        )

    def namespace(self) -> r.NamespaceTool:
        """The functions offered upstream, under the namespace ``label``."""
        if self.kind == WEB_SEARCH:
            search = r.FunctionToolParam(
                name="search",
                description="Search the web; answers with results and their URLs.",
                parameters=_WEB_PARAMETERS,
            )
            return r.NamespaceTool(name=WEB_SEARCH, description="Web search.", tools=[search])
        description = self.raw.get("server_description")
        return r.NamespaceTool(
            name=self.label,
            description=description
            if isinstance(description, str)
            else f"Tools of the MCP server {self.label}.",
            tools=[
                r.FunctionToolParam(name=t.name, description=t.description, parameters=t.input_schema)
                for t in offered(self.raw, self.tools)
            ],
        )


def _read_only(tool: r.McpToolInfo) -> bool:
    return bool((tool.annotations or {}).get("readOnlyHint"))


def _matches(spec: Any, tool: r.McpToolInfo) -> bool:
    """A filter ``{tool_names?, read_only?}``: every key given must hold."""
    if not isinstance(spec, dict):
        return False
    names, read_only = spec.get("tool_names"), spec.get("read_only")
    if names is None and read_only is None:
        return False
    if names is not None and tool.name not in names:
        return False
    return read_only is None or _read_only(tool) == bool(read_only)


def offered(raw: Mapping[str, Any], tools: Iterable[r.McpToolInfo]) -> list[r.McpToolInfo]:
    """The listed tools ``allowed_tools`` lets through (names, or a filter; none: all)."""
    allowed = raw.get("allowed_tools")
    if allowed is None:
        return list(tools)
    if isinstance(allowed, list):
        return [t for t in tools if t.name in allowed]
    return [t for t in tools if _matches(allowed, t)]


def needs_approval(raw: Mapping[str, Any], tool: r.McpToolInfo | None, name: str) -> bool:
    """``require_approval``: ``"always"`` (OpenAI's default), ``"never"``, or ``{always: filter,
    never: filter}`` (a tool in neither filter needs approval)."""
    rule = raw.get("require_approval", "always")
    if rule is None or rule == "always":
        return True
    if rule == "never":
        return False
    if isinstance(rule, dict):
        info = tool or r.McpToolInfo(name=name, input_schema={})
        return not _matches(rule.get("never"), info)
    return True


def check_tool(raw: Mapping[str, Any], where: str) -> None:
    """The shape of ``allowed_tools`` and ``require_approval``: a 400 naming the field."""
    allowed = raw.get("allowed_tools")
    if allowed is not None and not (
        (isinstance(allowed, list) and all(isinstance(n, str) for n in allowed)) or isinstance(allowed, dict)
    ):
        raise InvalidRequest(
            "`allowed_tools` is a list of names or a filter.", param=f"{where}.allowed_tools"
        )
    rule = raw.get("require_approval")
    if rule is not None and rule not in ("always", "never") and not isinstance(rule, dict):
        raise InvalidRequest(
            '`require_approval` is "always", "never" or a filter.', param=f"{where}.require_approval"
        )


def declined_output(reason: str | None) -> str:
    return "The user declined this tool call." + (f" Reason: {reason}" if reason else "")


def approval_outcomes(items: Iterable[r.ItemParam]) -> dict[str, tuple[bool, str | None]]:
    """``approval_request_id`` → (approve, reason), from the ``mcp_approval_response`` items."""
    out: dict[str, tuple[bool, str | None]] = {}
    for item in items:
        if isinstance(item, r.HostedItemParam) and item.item.get("type") == "mcp_approval_response":
            request_id = item.item.get("approval_request_id")
            if isinstance(request_id, str):
                reason = item.item.get("reason")
                out[request_id] = (
                    bool(item.item.get("approve")),
                    reason if isinstance(reason, str) else None,
                )
    return out


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            return f"Error: {error['message']}"
        blocks = error.get("content") or []
        texts = [b.get("text", "") for b in blocks if isinstance(b, dict)]
        return "Error: " + (" ".join(t for t in texts if t) or json.dumps(error))
    return f"Error: {error}"


def _pair(call_id: str, namespace: str, name: str, arguments: str, output: str) -> list[r.ItemParam]:
    return [
        r.FunctionCallItemParam(call_id=call_id, name=name, arguments=arguments, namespace=namespace),
        r.FunctionCallOutputItemParam(call_id=call_id, output=output),
    ]


def model_history(items: list[r.ItemParam], labels: set[str], web: bool) -> list[r.ItemParam]:
    """``items`` as the model reads them over a Chat upstream: the hosted items of this
    request's hosted tools become calls and outputs; other items stay as they are."""
    outcomes = approval_outcomes(items)
    out: list[r.ItemParam] = []
    for item in items:
        if not isinstance(item, r.HostedItemParam):
            out.append(item)
            continue
        data, kind = item.item, item.item.get("type")
        label = data.get("server_label")
        if kind in ("mcp_list_tools", "mcp_approval_response") and (
            kind != "mcp_list_tools" or label in labels
        ):
            continue
        if kind == "mcp_call" and label in labels:
            output = data.get("output")
            text = (
                output
                if isinstance(output, str) and data.get("error") is None
                else _error_text(data.get("error"))
            )
            out += _pair(
                str(data.get("id")),
                str(label),
                str(data.get("name")),
                str(data.get("arguments") or "{}"),
                text,
            )
        elif kind == "mcp_approval_request" and label in labels:
            decided = outcomes.get(str(data.get("id")))
            if decided is not None and not decided[0]:
                args = str(data.get("arguments") or "{}")
                out += _pair(
                    str(data.get("id")), str(label), str(data.get("name")), args, declined_output(decided[1])
                )
        elif kind == "web_search_call" and web:
            action = data.get("action") or {}
            query = action.get("query") if isinstance(action, dict) else None
            sources = [s.get("url") for s in (action.get("sources") or []) if isinstance(s, dict)]
            text = "Searched the web." + (f" Sources: {', '.join(map(str, sources))}" if sources else "")
            out += _pair(str(data.get("id")), WEB_SEARCH, "search", json.dumps({"query": query}), text)
        else:
            out.append(item)
    return out

"""Output items become input items: the materialised history of a conversation.

A stored response keeps every input and output item up to and including its turn, as input
items, so the next turn's upstream request is rebuilt from one store read.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET

from shim.wire import responses as r

__all__ = ["client_call_input", "output_to_input", "string_input"]


def client_call_input(
    item: r.ClientCall,
) -> r.CustomToolCallItemParam | r.ApplyPatchCallItemParam | r.ShellCallItemParam | r.LocalShellCallItemParam:
    """A raised client call (``shim.translate.tools``) as the input item the client sends back."""
    if isinstance(item, r.CustomToolCall):
        return r.CustomToolCallItemParam(
            call_id=item.call_id,
            name=item.name,
            input=item.input,
            id=item.id,
            namespace=item.namespace if isinstance(item.namespace, str) else None,
        )
    if isinstance(item, r.ApplyPatchCall):
        op = item.operation
        operation = r.ApplyPatchOperationParam(
            type=op.type, path=op.path, diff=op.diff if isinstance(op.diff, str) else None
        )
        return r.ApplyPatchCallItemParam(
            call_id=item.call_id, operation=operation, id=item.id, status=item.status
        )
    if isinstance(item, r.ShellCall):
        a = item.action
        action = r.ShellActionParam(
            commands=a.commands, timeout_ms=a.timeout_ms, max_output_length=a.max_output_length
        )
        return r.ShellCallItemParam(call_id=item.call_id, action=action, id=item.id, status=item.status)
    la = item.action
    local = r.LocalShellActionParam(
        command=la.command,
        env=la.env,
        timeout_ms=la.timeout_ms,
        user=la.user,
        working_directory=la.working_directory,
    )
    return r.LocalShellCallItemParam(call_id=item.call_id, action=local, id=item.id, status=item.status)


def string_input(value: str | list[r.ItemParam] | None) -> list[r.ItemParam]:
    if value is None:
        return []
    if isinstance(value, str):
        return [r.MessageItemParam(role="user", content=[r.InputTextContent(text=value)])]
    return list(value)


def output_to_input(items: list[r.ItemField]) -> list[r.ItemParam]:
    out: list[r.ItemParam] = []
    for item in items:
        if isinstance(item, r.Message):
            phase = item.phase if item.phase is not UNSET else None
            out.append(
                r.MessageItemParam(
                    role=item.role,
                    content=list(item.content),
                    id=item.id,
                    status=item.status,
                    phase=phase,
                )
            )
        elif isinstance(item, r.FunctionCall):
            out.append(
                r.FunctionCallItemParam(
                    call_id=item.call_id,
                    name=item.name,
                    arguments=item.arguments,
                    id=item.id,
                    status=item.status,
                    namespace=item.namespace if isinstance(item.namespace, str) else None,
                )
            )
        elif isinstance(item, r.ClientCall):
            out.append(client_call_input(item))
        elif isinstance(item, r.FunctionCallOutput):
            out.append(r.FunctionCallOutputItemParam(call_id=item.call_id, output=item.output, id=item.id))
        elif isinstance(item, r.ReasoningBody):
            out.append(
                r.ReasoningItemParam(
                    id=item.id,
                    summary=list(item.summary),
                    content=list(item.content) if isinstance(item.content, list) else None,
                    encrypted_content=item.encrypted_content
                    if isinstance(item.encrypted_content, str)
                    else None,
                )
            )
        elif isinstance(item, r.CompactionBody):
            out.append(r.CompactionSummaryItemParam(encrypted_content=item.encrypted_content, id=item.id))
        elif isinstance(item, r.HostedCall):  # kept whole, as the client would send it back
            out.append(r.HostedItemParam(item=msgspec.to_builtins(item)))
    return out

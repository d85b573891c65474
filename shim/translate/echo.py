"""The request echo: the ``ResponseResource`` skeleton every response starts from.

The spec requires all 31 resource fields; strict validators also demand numbers (never null)
for sampling parameters and complete tool objects, so defaults are filled here, once.
"""

from __future__ import annotations

from shim.core.diagnostics import Diagnostics
from shim.translate.parameters import echoed
from shim.translate.tools import client_tools, echo_tools
from shim.wire import responses as r

__all__ = ["response_template"]


def _text(param: r.TextParam | None) -> r.TextField:
    fmt = param.format if param and param.format is not None else r.TextResponseFormat()
    if isinstance(fmt, r.JsonSchemaResponseFormat):
        # The official validator types the echoed ``schema`` as null only (a spec bug); ``strict``
        # is a required boolean in the resource, false when the request left it out (its default).
        fmt = r.JsonSchemaResponseFormat(
            name=fmt.name, description=fmt.description, schema=None, strict=bool(fmt.strict)
        )
    field = r.TextField(format=fmt)
    if param is not None and param.verbosity is not None:
        field.verbosity = param.verbosity
    return field


def response_template(
    body: r.CreateResponseBody,
    *,
    response_id: str,
    created_at: int,
    model: str,
    store: bool = True,
) -> r.ResponseResource:
    # The client-executed tools, in the order the request writer lowers them: the response
    # writer rebuilds the lowering table from this echo to raise the upstream's calls.
    quiet = Diagnostics("ignore")  # the request writer reported these already
    tools = client_tools(body.tools, quiet) if body.tools else []
    for item in body.input if isinstance(body.input, list) else ():
        if isinstance(item, r.AdditionalToolsItemParam):
            tools.extend(client_tools(item.tools, quiet))
    reasoning = (
        r.Reasoning(effort=body.reasoning.effort, summary=body.reasoning.summary) if body.reasoning else None
    )
    return r.ResponseResource(
        id=response_id,
        created_at=created_at,
        model=model,
        status="in_progress",
        previous_response_id=body.previous_response_id,
        instructions=body.instructions,
        tools=echo_tools(tools) if tools else [],
        tool_choice=body.tool_choice if body.tool_choice is not None else "auto",
        truncation=body.truncation or "disabled",
        parallel_tool_calls=body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
        text=_text(body.text),
        top_logprobs=body.top_logprobs or 0,
        reasoning=reasoning,
        max_output_tokens=body.max_output_tokens,
        store=store,
        background=bool(body.background),
        service_tier=body.service_tier or "default",
        **echoed(body),  # temperature, top_p, metadata… (translate/parameters.py)
    )

"""Hosted tools inside one Responses-over-Chat response: several upstream rounds, one answer.

``requested`` (before anything else of the turn) finds the request's hosted tools and refuses a
server the operator does not allow, before any connection. ``start`` (in ``prepare``) lists each
MCP server's tools — or reuses an ``mcp_list_tools`` item of the conversation — runs the calls
the client approved (``mcp_approval_response``), and offers the tools as namespaced functions.
``event_batches`` then drives the pump once per round (``hosted_rounds.py``: how a round is read
and merged for each kind of client): the merger (``translate/hosted_events.py``)
makes one response of the rounds' events; between rounds the loop runs the hosted calls, feeds
their outputs back and asks again — until the model answers, asks for approval, calls a client
tool, or ``max_tool_calls`` / ``hosted_max_rounds`` is reached (then ``tool_choice`` is
``"none"``: the model must answer). The response is stored whole when it ends, so
``previous_response_id`` continues after hosted calls (docs/hosted.md).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httpx
import msgspec

from shim import tracing
from shim.conversation.policies import apply_route_policies
from shim.core.diagnostics import Diagnostics
from shim.errors import HostedToolError, InvalidRequest, McpServerNotAllowed, ShimError, UpstreamError
from shim.hosted.servers import McpServer, resolve_server
from shim.settings import Route
from shim.store.repository import StoredResponse
from shim.translate.chat_request import to_chat_request
from shim.translate.history import output_to_input
from shim.translate.hosted_events import Kind, RoundMerger
from shim.translate.hosted_tools import (
    WEB_SEARCH,
    HostedTool,
    approval_outcomes,
    check_tool,
    model_history,
    needs_approval,
)
from shim.turns.context import TurnContext
from shim.turns.hosted_rounds import Framed, FramedRound, Round, whole_round
from shim.turns.pump import Translation, pump
from shim.upstream.redaction import EventRedactor, redact
from shim.wire import chat as c
from shim.wire import responses as r

if TYPE_CHECKING:
    from shim.turns.responses_over_chat import Turn

__all__ = ["HostedTurn", "checked_body", "complete", "event_batches", "requested", "sse_batches", "start"]

_LIMIT = {
    "type": "mcp_protocol_error",
    "code": -32000,
    "message": "Not run: this response's tool-call limit was reached.",
}
_URL = re.compile(r"https?://[^\s<>()\"']+[^\s<>()\"'.,;:!?]")


@dataclass
class HostedTurn:
    tools: list[HostedTool]
    servers: dict[str, McpServer]  # by label; web search under "web_search"
    rest: list[dict[str, Any]]  # the request's other tools
    round_body: r.CreateResponseBody | None = None
    model_items: list[r.ItemParam] = field(default_factory=list)
    round_template: r.ResponseResource | None = None
    listed: list[r.McpListTools] = field(default_factory=list)  # new lists, emitted first
    approved: list[r.McpCall] = field(default_factory=list)  # approved calls, run in prepare
    calls: int = 0

    def tool(self, label: str) -> HostedTool | None:
        return next((t for t in self.tools if t.label == label), None)

    def classify(self, namespace: str, name: str) -> Kind | None:
        tool = self.tool(namespace)
        if tool is None:
            return None
        if tool.kind == WEB_SEARCH:
            return "web_search"
        info = next((t for t in tool.tools if t.name == name), None)
        return "approval" if needs_approval(tool.raw, info, name) else "mcp"


def requested(ctx: TurnContext, body: r.CreateResponseBody) -> HostedTurn | None:
    """The request's hosted tools, or ``None``. A server outside the allow list is a 400 here,
    before any connection; so is a malformed tool."""
    tools: list[HostedTool] = []
    servers: dict[str, McpServer] = {}
    rest: list[dict[str, Any]] = []
    provider = ctx.hosted.web_search
    for i, raw in enumerate(body.tools or ()):
        kind = raw.get("type") if isinstance(raw, dict) else None
        where = f"tools[{i}]"
        if kind == "mcp":
            check_tool(raw, where)
            server = resolve_server(raw, ctx.hosted, where)
            if server.label in servers or server.label == WEB_SEARCH:
                raise InvalidRequest(
                    f"Two hosted tools share the label {server.label!r}.", param=f"{where}.server_label"
                )
            servers[server.label] = server
            tools.append(HostedTool("mcp", server.label, raw))
        elif (
            kind in ("web_search", "web_search_preview")
            and provider is not None
            and WEB_SEARCH not in servers
        ):
            servers[WEB_SEARCH] = ctx.hosted.registered_server(provider.server)
            tools.append(HostedTool("web_search", WEB_SEARCH, raw))
        else:
            rest.append(raw)
    if not tools:
        return None
    names = {str(t.get("name")) for t in rest if isinstance(t, dict) and t.get("type") == "namespace"}
    if clash := names & set(servers):
        raise InvalidRequest(
            f"A namespace tool and a hosted tool share the name {sorted(clash)[0]!r}.", param="tools"
        )
    return HostedTurn(tools, servers, rest)


def checked_body(body: r.CreateResponseBody, hosted: HostedTurn) -> r.CreateResponseBody:
    """The body the request-field table judges: hosted tools and ``max_tool_calls`` are honoured here."""
    return msgspec.structs.replace(body, tools=hosted.rest, max_tool_calls=None)


def _reused(items: list[r.ItemParam], label: str) -> list[r.McpToolInfo] | None:
    """The tools of the last good ``mcp_list_tools`` item for ``label`` in the conversation."""
    for item in reversed(items):
        data = item.item if isinstance(item, r.HostedItemParam) else None
        if (
            data
            and data.get("type") == "mcp_list_tools"
            and data.get("server_label") == label
            and not data.get("error")
        ):
            try:
                return msgspec.convert(data.get("tools") or [], list[r.McpToolInfo])
            except msgspec.ValidationError:
                return None
    return None


def _choice(choice: r.ToolChoice | None, hosted: HostedTurn) -> r.ToolChoice | None:
    if isinstance(choice, r.SpecificMcpParam) and hosted.tool(choice.server_label) is not None:
        if choice.name:
            return r.SpecificFunctionParam(name=f"{choice.server_label}__{choice.name}")
        return r.AllowedToolsParam(tools=[r.SpecificFunctionParam(name=choice.server_label)], mode="required")
    return choice


async def _run(
    ctx: TurnContext, hosted: HostedTurn, label: str, name: str, arguments: str
) -> tuple[str | None, dict[str, Any] | None]:
    server = hosted.servers[label]
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        args = None
    if not isinstance(args, dict):
        return None, {
            "type": "mcp_protocol_error",
            "code": -32602,
            "message": "The arguments are not a JSON object.",
        }
    provider = ctx.hosted.web_search
    if label == WEB_SEARCH and provider is not None:
        name, args = provider.tool, {provider.query_argument: args.get("query", "")}
    from shim.hosted.mcp_client import McpFailure, call_tool  # loaded on first use (below)

    kind = "web_search" if label == WEB_SEARCH else "mcp"
    with tracing.tool_call(name, tool_type=kind, server=label, arguments=arguments) as span:
        try:
            result = await call_tool(server, name, args, ctx.hosted)
        except McpFailure as exc:
            span.failed(str(exc.error.get("type", "mcp_error")), str(exc.error.get("message", "")))
            return None, exc.error
        except McpServerNotAllowed as exc:
            span.failed("mcp_server_not_allowed", exc.message)
            return None, {"type": "http_error", "code": 403, "message": exc.message}
        if result.error is not None:
            span.failed(str(result.error.get("type", "tool_error")), str(result.error.get("message", "")))
        elif result.output is not None:
            span.result(result.output)
        return result.output, result.error


async def start(
    ctx: TurnContext,
    hosted: HostedTurn,
    body: r.CreateResponseBody,
    items: list[r.ItemParam],
    new_input: list[r.ItemParam],
    route: Route,
) -> tuple[r.CreateResponseBody, list[r.ItemParam]]:
    """List (or reuse) tools, run approved calls; the body and items of the first round."""
    # The MCP client (with jsonschema) is imported when a request first uses a hosted tool, not
    # at start-up; the mcp SDK (with pydantic, starlette) only for a legacy SSE server
    # (bench/README.md, issue 18).
    from shim.hosted.mcp_client import McpFailure, list_tools

    for tool in hosted.tools:
        if tool.kind == WEB_SEARCH:
            continue
        found = _reused(items, tool.label)
        if found is None:
            try:
                found = await list_tools(hosted.servers[tool.label], ctx.hosted)
            except McpFailure as exc:
                raise HostedToolError(
                    f"Error retrieving tool list from MCP server {tool.label!r}: {exc.message}", param="tools"
                ) from None
            hosted.listed.append(r.McpListTools(id=ctx.ids("mcpl"), server_label=tool.label, tools=found))
        tool.tools = found
    done = {
        d.item.get("approval_request_id")
        for d in items
        if isinstance(d, r.HostedItemParam) and d.item.get("type") == "mcp_call"
    }
    requests = {
        d.item.get("id"): d.item
        for d in items
        if isinstance(d, r.HostedItemParam) and d.item.get("type") == "mcp_approval_request"
    }
    for request_id, (approve, _) in approval_outcomes(new_input).items():
        request = requests.get(request_id)
        if (
            not approve
            or request_id in done
            or request is None
            or hosted.tool(str(request.get("server_label"))) is None
        ):
            continue
        label, name, arguments = (
            str(request["server_label"]),
            str(request.get("name")),
            str(request.get("arguments") or "{}"),
        )
        output, error = await _run(ctx, hosted, label, name, arguments)
        hosted.calls += 1
        hosted.approved.append(
            r.McpCall(
                id=ctx.ids("mcp"),
                server_label=label,
                name=name,
                arguments=arguments,
                status="failed" if error else "completed",
                output=output,
                error=error,
                approval_request_id=request_id,
            )
        )
    # The calls just run, as the model reads them; this response's new ``mcp_list_tools`` items
    # are left out (``model_history`` drops a list of a server of the request's: each is).
    ran = [r.HostedItemParam(item=msgspec.to_builtins(i)) for i in hosted.approved]
    labels = {t.label for t in hosted.tools if t.kind == "mcp"}
    web = any(t.kind == WEB_SEARCH for t in hosted.tools)
    namespaces = [msgspec.to_builtins(t.namespace()) for t in hosted.tools]
    # A forced tool_choice is met once a call ran in this response (an approved one, here).
    choice = (
        _choice(body.tool_choice, hosted) if not hosted.approved or body.tool_choice == "none" else "auto"
    )
    hosted.model_items = model_history([*items, *ran], labels, web)
    round_body = msgspec.structs.replace(
        body, tools=[*hosted.rest, *namespaces], tool_choice=choice, max_tool_calls=None
    )
    hosted.round_body = apply_route_policies(round_body, route, hosted.model_items)  # calls just run count
    return hosted.round_body, hosted.model_items


def echo(template: r.ResponseResource, hosted: HostedTurn) -> None:
    template.tools = [*template.tools, *(t.echo() for t in hosted.tools)]


def _error_text(error: dict[str, Any]) -> str:
    if isinstance(error.get("message"), str):
        return f"Error: {error['message']}"
    texts = [b.get("text", "") for b in error.get("content") or [] if isinstance(b, dict)]
    return "Error: " + (" ".join(t for t in texts if t) or "the tool failed")


def event_batches(
    ctx: TurnContext,
    turn: Turn,
    response: httpx.Response,
    local: MutableMapping[str, StoredResponse] | None = None,
) -> AsyncIterator[list[r.StreamingEvent] | None]:
    """The merged events of the rounds, batched as the pump batches them (``None``: keep-alive)."""
    # Not framed: every batch is a list of event structs.
    batches = _rounds(ctx, turn, response, local, framed=False, whole=False)
    return cast("AsyncIterator[list[r.StreamingEvent] | None]", batches)


def sse_batches(
    ctx: TurnContext, turn: Turn, response: httpx.Response
) -> AsyncIterator[Sequence[Framed] | None]:
    """``event_batches`` for an SSE client: runs of text deltas as their SSE bytes already."""
    return _rounds(ctx, turn, response, None, framed=True, whole=False)


async def _rounds(
    ctx: TurnContext,
    turn: Turn,
    response: httpx.Response,
    local: MutableMapping[str, StoredResponse] | None,
    *,
    framed: bool,
    whole: bool,
) -> AsyncIterator[list[Any] | None]:
    """The rounds. ``framed``: text deltas as SSE bytes (``FramedRound``). ``whole``: for
    ``complete``, which reads no batch but the stored response: an unstreamed round is read whole
    without the pump's keep-alive machinery (``whole_round``) and a call is awaited in place."""
    from shim.turns.responses_over_chat import EventsTranslation, fail_after_finish, remember

    hosted = turn.hosted
    assert hosted is not None and hosted.round_body is not None and hosted.round_template is not None
    merger = RoundMerger(
        turn.template,
        ids=ctx.ids,
        clock=ctx.clock,
        classify=hosted.classify,
        sources="web_search_call.action.sources" in (turn.body.include or ()),
    )
    redactor = EventRedactor(turn.resolved.upstream_key)
    first = merger.start()
    if turn.compaction is not None:  # context_management compacted first: its item leads
        first += merger.finished_item(turn.compaction)
    for listed in hosted.listed:
        first += merger.listed(listed)
    for approved in hosted.approved:
        first += merger.approved(approved)
    yield first
    items = list(hosted.model_items)
    chat_request = turn.chat_request
    limit = turn.body.max_tool_calls
    rounds = 0

    async def stored(tail: list[r.StreamingEvent]) -> list[r.StreamingEvent]:
        try:
            await remember(ctx, turn, merger.response, local)
        except ShimError as exc:
            return fail_after_finish(tail, exc)
        return tail

    while True:
        merger.begin_round()
        # The round's template and request, given as such: ``dataclasses.replace`` of the whole
        # turn, field by field, cost more than the translation's own set-up (issue 18).
        inner = EventsTranslation(ctx, turn, hosted.round_template, chat_request)

        async def finished() -> None:
            if merger.finished:
                failure = merger.response.error
                if failure is not None:
                    failure.message = redact(failure.message, turn.resolved.upstream_key)
                await remember(ctx, turn, merger.response, local)

        if whole and not inner.streamed:
            yield await whole_round(response, Round(inner, merger), ctx.timing, redactor, finished)
        else:
            translation: Translation[Any] = FramedRound(inner, merger) if framed else Round(inner, merger)
            async for batch in pump(
                response,
                translation,
                ctx.timing,
                redactor,
                on_finish=finished,
                decoded=not inner.streamed,
            ):
                yield batch
        if merger.finished:
            return
        rounds += 1
        items += output_to_input(inner.driver.response.output)
        over = False
        # A model asked to answer (tool_choice "none") that calls anyway is not obeyed: the calls
        # are not run and the response ends (else a model ignoring "none" would loop forever).
        answer_now = chat_request.tool_choice == "none"
        for call in merger.pending:
            yield merger.call_started(call)
            output: str | None = None
            error: dict[str, Any] | None = _LIMIT
            if answer_now or (limit is not None and hosted.calls >= limit):
                over = True
            elif whole:  # nobody reads a keep-alive moment: the call is awaited in place
                hosted.calls += 1
                output, error = await _run(ctx, hosted, call.label, call.name, call.arguments)
            else:
                hosted.calls += 1
                running = asyncio.ensure_future(_run(ctx, hosted, call.label, call.name, call.arguments))
                try:
                    while not running.done():
                        await asyncio.wait({running}, timeout=ctx.timing.keepalive)
                        if not running.done():
                            yield None  # a keep-alive moment while the tool works
                    output, error = running.result()
                finally:
                    running.cancel()  # the client went away (or we did): the call stops
            sources = tuple(_URL.findall(output or "")) if call.kind == "web_search" else ()
            items.append(
                r.FunctionCallOutputItemParam(
                    call_id=call.call_id, output=_error_text(error) if error is not None else output or ""
                )
            )
            yield merger.call_finished(call, output, error, sources)
        if merger.asked_approval or merger.client_calls or over:
            yield await stored(merger.close())
            return
        spent = (limit is not None and hosted.calls >= limit) or rounds >= ctx.hosted.max_rounds
        body = msgspec.structs.replace(hosted.round_body, tool_choice="none" if spent else "auto")
        body = apply_route_policies(body, turn.resolved.route, items)  # max_tool_rounds, stop
        try:
            chat_request = to_chat_request(
                body,
                items,
                model=turn.resolved.upstream_model,
                dialect=turn.resolved.dialect,
                diags=Diagnostics("ignore"),  # the first round reported what there was to report
                stream=bool(turn.chat_request.stream),
            )
            response = await ctx.upstream.send(
                turn.resolved, "/chat/completions", c.encode_chat_request(chat_request), stream=True
            )
        except ShimError as exc:
            payload = r.ErrorPayload(
                type=exc.type,
                code=exc.code,
                message=redact(exc.message, turn.resolved.upstream_key),
                param=exc.param,
            )
            yield await stored(merger.fail(payload))
            return


async def complete(
    ctx: TurnContext, turn: Turn, local: MutableMapping[str, StoredResponse] | None = None
) -> r.ResponseResource:
    """The whole answer: the same rounds, drained here (cancelling this cancels a running call)."""
    from shim.turns.responses_over_chat import open_stream

    response = await open_stream(ctx, turn)
    async for _ in _rounds(ctx, turn, response, local, framed=False, whole=True):
        pass
    assert turn.stored is not None, "the last round remembers the turn"
    if turn.unstored is not None:  # nobody could retrieve it: refused, as a plain whole answer is
        raise turn.unstored
    resource = turn.stored.resource
    if resource.status == "failed" and resource.error is not None:
        raise UpstreamError(resource.error.message, code=resource.error.code)
    return resource

"""``POST /v1/responses/compact``: the thin IO around ``translate/compaction``.

A route whose upstream speaks Open Responses forwards the request instead (``pass_through``: its
compaction items are the upstream's own). Over Chat, the window is the history the one rule of
``conversation/history.py`` gives (``previous_response_id``: one store read) plus ``input``;
sealed items in it are opened first, so compacting an already compacted window works. The
upstream model writes the summary in one non-streaming call; the answer is a
``response.compaction`` resource whose ``compaction`` item carries the summary sealed for the
caller. A model that writes nothing gets the prompt file's fallback, a marked extract of the
window (reported as ``emulated:summary``), or with diagnostics policy ``error`` a 502. The item
is accepted back as input by ``POST /v1/responses`` and WebSocket turns
(``SealedItems.open_items``), which replay it upstream as one summary message.
"""

from __future__ import annotations

import msgspec

from shim.conversation.history import continue_from
from shim.conversation.policies import apply_route_policies
from shim.core.diagnostics import Diagnostics
from shim.errors import InvalidRequest, UpstreamError, UpstreamInvalidResponse
from shim.translate.chat_request import to_chat_request
from shim.translate.compaction import (
    CompactionConfig,
    compact_resource,
    fallback_summary,
    summarise_body,
    summary_text,
)
from shim.translate.echo import response_template
from shim.translate.pipeline import chat_completion_to_response
from shim.turns.context import TurnContext
from shim.upstream import failover
from shim.upstream.routing import Resolved
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = ["compact", "pass_through"]


async def compact(
    ctx: TurnContext,
    body: r.CompactResponseMethodPublicBody,
    resolved: Resolved,
    client_key: str | None,
    *,
    tail: list[r.ItemParam] | None = None,
) -> tuple[r.CompactResource, Diagnostics]:
    """``tail``: sealed into the compaction item with the summary (``context_management``: the
    turn's own items, which then follow the summary wherever the item goes, see
    ``SealedItems.open_items``)."""
    scopes = ctx.scopes(client_key)
    history = await continue_from(ctx.store, scopes, body.previous_response_id, body.input)
    window = history.window
    if not window:
        raise InvalidRequest("There is nothing to compact.", param="input", code="missing_input")

    config = ctx.compaction
    sealed = ctx.sealed(*scopes)
    # The route's settings for small models apply to the summary too (its output limit where the
    # client set none, its temperature and stop sequences); then the prompt file's limit.
    limited = body.max_output_tokens or resolved.route.max_output_tokens
    create, prompt = summarise_body(msgspec.structs.replace(body, max_output_tokens=limited), config)
    create = apply_route_policies(create, resolved.route, window)
    diags = ctx.diagnostics()
    opened = sealed.open_items(window, len(history.items))

    def request(target: Resolved) -> bytes:  # per upstream of the route (upstream/failover.py)
        with failover.reports_once(diags):
            chat_request = to_chat_request(
                create,
                [*opened, prompt],
                model=target.upstream_model,
                dialect=target.dialect,
                diags=diags,
                stream=False,
            )
        return c.encode_chat_request(chat_request)

    answer, resolved = await failover.send(ctx.upstream, resolved, "/chat/completions", request, stream=False)
    template = response_template(
        create, response_id=ctx.ids("resp"), created_at=ctx.clock(), model=body.model or "", store=False
    )
    try:
        resource = chat_completion_to_response(
            template, resolved.dialect, answer.content, ids=ctx.ids, clock=ctx.clock
        )
    except msgspec.DecodeError as exc:
        raise UpstreamInvalidResponse(f"The upstream's answer is not a Chat completion: {exc}") from None
    summary = summary_text(resource) or _fallback(opened, config, diags)
    result = compact_resource(
        response_id=template.id,
        created_at=template.created_at,
        window=window,
        sealed_summary=sealed.seal_summary(summary, tail),
        usage=resource.usage,
        config=config,
        ids=ctx.ids,
    )
    return result, diags


def _fallback(opened: list[r.ItemParam], config: CompactionConfig, diags: Diagnostics) -> str:
    """The shim's own summary when the model wrote none (see ``fallback_summary``)."""
    summary = fallback_summary(opened, config) if diags.policy != "error" else None
    if summary is None:
        raise UpstreamError("The upstream model wrote no summary.", code="upstream_empty_summary")
    diags.report(
        "emulated",
        "The upstream model wrote no summary: the compaction holds an extract of the conversation "
        "made by the shim.",
        param="summary",
    )
    return summary


async def pass_through(ctx: TurnContext, raw: bytes, resolved: Resolved) -> bytes:
    """A Responses upstream compacts by itself: the body goes as sent (model renamed by the route)."""
    answer, _ = await failover.send(
        ctx.upstream,
        resolved,
        "/responses/compact",
        lambda target: failover.with_model(raw, target.upstream_model),
        stream=False,
    )
    return answer.content

"""Context limits for a Responses turn over a Chat upstream: the IO around
``conversation/truncation.py`` and the existing compaction.

- ``context_management: [{type: "compaction", compact_threshold}]``: when the window's estimate
  passes the threshold, everything before the last user message is compacted first (one
  summarising upstream call, ``turns/compaction.py``); the compaction item is the response's
  first output item and the turn continues from the window it starts (``SealedItems.open_items``):
  a continuation, a conversation or a client sending the output back starts from the summary.
- ``truncation: "auto"``: the request is trimmed to the route's ``context_window`` before it is
  sent, and an upstream context-length error (``ContextLengthExceeded``, read from the vendor's
  words by ``mappings/`` ``[errors]``) is answered by dropping older turns and sending again, at
  most ``truncation_retries`` times. What is stored is the whole window: trimming is about what
  one upstream call can take, never about the conversation's record.
- ``truncation: "disabled"`` (the default): a context-length error is the client's 400
  ``context_length_exceeded``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from shim.conversation.truncation import BYTES_PER_TOKEN, Truncation, estimate_tokens
from shim.errors import ContextLengthExceeded, InvalidRequest
from shim.turns import compaction
from shim.turns.context import TurnContext
from shim.upstream import failover
from shim.upstream.routing import Resolved
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = ["Fitting", "compact_past_threshold", "compaction_threshold", "fitted_request", "send_fitted"]

Build = Callable[[list[r.ItemParam]], c.ChatCompletionRequest]
log = logging.getLogger("shim.context")


@dataclass
class Fitting:
    """A turn under ``truncation: "auto"``: its window's state and how to write it again."""

    truncation: Truncation
    rebuild: Build


def compaction_threshold(body: r.CreateResponseBody) -> int | None:
    """The ``compact_threshold`` of a ``compaction`` entry in ``context_management``, or ``None``;
    a malformed list is a 400 naming the entry."""
    value: Any = body.context_management
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidRequest("`context_management` must be a list.", param="context_management")
    threshold: int | None = None
    for n, entry in enumerate(value):
        where = f"context_management[{n}]"
        if not isinstance(entry, dict) or entry.get("type") != "compaction":
            raise InvalidRequest(
                f'`{where}.type` must be "compaction" (the only kind of context management).',
                param=f"{where}.type",
            )
        limit = entry.get("compact_threshold")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidRequest(
                f"`{where}.compact_threshold` must be a whole number of tokens (1 or more).",
                param=f"{where}.compact_threshold",
            )
        unknown = set(entry) - {"type", "compact_threshold"}
        if unknown:
            raise InvalidRequest(f"Unknown field in `{where}`: {sorted(unknown)[0]}.", param=where)
        threshold = limit
    return threshold


async def compact_past_threshold(
    ctx: TurnContext,
    body: r.CreateResponseBody,
    resolved: Resolved,
    client_key: str | None,
    opened: list[r.ItemParam],
) -> tuple[r.CompactionBody, list[r.ItemParam]] | None:
    """When ``opened`` (the window with sealed items opened, so starting at its latest compaction)
    passes the threshold: the compaction item (the turn's first output item) and the window the
    turn goes on from, else ``None``. Everything before the last user message is summarised; that
    message and what follows it are sealed into the item with the summary, so the item alone
    carries the turn wherever it goes (a client may drop what stands before it)."""
    threshold = compaction_threshold(body)
    if threshold is None or estimate_tokens(opened) <= threshold:
        return None
    last_user = max(
        (n for n, i in enumerate(opened) if isinstance(i, r.MessageItemParam) and i.role == "user"),
        default=0,
    )
    if last_user == 0:  # nothing before the question: there is nothing to compact
        return None
    request = r.CompactResponseMethodPublicBody(
        model=body.model, input=opened[:last_user], instructions=body.instructions
    )
    result, _ = await compaction.compact(ctx, request, resolved, client_key, tail=opened[last_user:])
    item = result.output[-1]
    assert isinstance(item, r.CompactionBody), "a compaction ends with its compaction item"
    log.info("context_management: %d items compacted past compact_threshold %d", last_user, threshold)
    sealed = r.CompactionSummaryItemParam(encrypted_content=item.encrypted_content, id=item.id)
    # the same rule a later turn applies to the item: what it summarised goes, instructions stay
    return item, ctx.sealed(*ctx.scopes(client_key)).open_items([*opened[:last_user], sealed])


def fitted_request(
    body: r.CreateResponseBody,
    resolved: Resolved,
    opened: list[r.ItemParam],
    build: Build,
    retries: int,
    rebuild: Build,
) -> tuple[c.ChatCompletionRequest, Fitting | None]:
    """The first Chat request, trimmed to the route's ``context_window`` under ``"auto"``.
    ``build`` reports lossy translation into the turn's diagnostics; ``rebuild`` (a smaller
    window of the same items) into a throwaway collector, so nothing is reported twice."""
    request = build(opened)
    if body.truncation != "auto":
        return request, None
    # What goes besides the items: instructions, tools, fields, and the output it reserves.
    whole = len(c.encode_chat_request(request))
    messages = len(msgspec.json.encode(request.messages))
    reserve = request.max_completion_tokens or request.max_tokens or 0
    overhead = (whole - messages + len((body.instructions or "").encode())) // BYTES_PER_TOKEN + reserve
    truncation = Truncation(opened, window=resolved.route.context_window, overhead=overhead, retries=retries)
    fitted = truncation.fit()
    if truncation.dropped_turns:
        log.info("truncation: %d oldest turns left out to fit the context window", truncation.dropped_turns)
        request = rebuild(fitted)
    return request, Fitting(truncation, rebuild)


async def send_fitted(
    ctx: TurnContext,
    resolved: Resolved,
    fitting: Fitting | None,
    request: c.ChatCompletionRequest,
    *,
    stream: bool,
    translate: Callable[[Resolved], c.ChatCompletionRequest] | None = None,
) -> tuple[httpx.Response, c.ChatCompletionRequest, Resolved]:
    """The upstream's answer, the request that got it and the upstream that gave it: the route's
    first that answers (``upstream/failover.py``; ``translate`` writes the request for another
    of its upstreams). Under ``"auto"`` a context-length refusal is sent again with older turns
    dropped, a bounded number of times."""
    while True:
        sent = {id(resolved): request}
        try:
            answer, answered = await failover.send(
                ctx.upstream, resolved, "/chat/completions", _bodies(resolved, sent, translate), stream=stream
            )
            return answer, sent.get(id(answered), request), answered
        except ContextLengthExceeded:
            smaller = fitting.truncation.shrink() if fitting is not None else None
            if fitting is None or smaller is None:
                raise
            log.info(
                "truncation: the upstream refused the input as too long; sending again without "
                "the %d oldest turns (attempt %d)",
                fitting.truncation.dropped_turns,
                fitting.truncation.attempts,
            )
            request = fitting.rebuild(smaller)


def _bodies(
    resolved: Resolved,
    sent: dict[int, c.ChatCompletionRequest],
    translate: Callable[[Resolved], c.ChatCompletionRequest] | None,
) -> Callable[[Resolved], bytes]:
    """The body for each upstream tried; ``sent`` keeps the request each one got (the first's
    is in it already)."""

    def body(target: Resolved) -> bytes:
        if target is not resolved and translate is not None:
            sent[id(target)] = translate(target)
        return c.encode_chat_request(sent.get(id(target), sent[id(resolved)]))

    return body

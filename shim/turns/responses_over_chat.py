"""An Open Responses client over a Chat Completions upstream: one turn, framing-free.

``prepare`` applies the request limits, continues the conversation (the one history rule,
``conversation/history.py``), applies the route's policies and translates the request;
``complete`` runs it whole; ``open_stream`` + ``event_batches`` run it through the pump. A
response is remembered only when it finished (completed, incomplete or failed) — a client that
went away mid-stream gets nothing stored; a store that fails turns the answer into a
well-formed failure (docs/store.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import msgspec

from shim.conversation.conversation_items import turn_finished
from shim.conversation.history import continue_from
from shim.conversation.policies import apply_route_policies
from shim.conversation.prompts import expand_prompt
from shim.conversation.sealed_items import SealedItems, wants_sealed_reasoning
from shim.core.deltas import ErrorDelta
from shim.core.diagnostics import Diagnostics
from shim.errors import InvalidRequest, ShimError, UpstreamError, UpstreamInvalidResponse
from shim.limits import check_create_body
from shim.store.repository import StoredResponse
from shim.telemetry import note_usage
from shim.translate.chat_request import to_chat_request
from shim.translate.echo import response_template
from shim.translate.history import output_to_input
from shim.translate.pipeline import ChatToResponsesStream, chat_completion_to_response, wants_logprobs
from shim.translate.request_fields import check_request_fields
from shim.turns import hosted_loop
from shim.turns.context import TurnContext
from shim.turns.context_limits import Fitting, compact_past_threshold, fitted_request, send_fitted
from shim.turns.pump import Translation, pump
from shim.upstream import failover
from shim.upstream.families import family, mixed_families, origins_of, replayable
from shim.upstream.redaction import EventRedactor, redact
from shim.upstream.routing import Resolved
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = [
    "EventsTranslation",
    "FramedTranslation",
    "Turn",
    "complete",
    "event_batches",
    "events",
    "fail_after_finish",
    "open_stream",
    "prepare",
    "sse_batches",
]

T = TypeVar("T", bound=r.StreamingEvent | bytes)  # an event, or text deltas as SSE bytes


@dataclass
class Turn:
    body: r.CreateResponseBody
    resolved: Resolved
    scope: str
    new_input: list[r.ItemParam]
    items: list[r.ItemParam]
    chat_request: c.ChatCompletionRequest
    template: r.ResponseResource
    diags: Diagnostics
    store: bool
    previous: StoredResponse | None = None
    stored: StoredResponse | None = field(default=None)
    conversation: str | None = None  # the conversation this turn's items are appended to
    conversation_scope: str | None = None  # where it lives (an older secret's scope after a rotation)
    fitting: Fitting | None = None  # truncation "auto" (turns/context_limits.py)
    hosted: hosted_loop.HostedTurn | None = None  # hosted tools: several rounds (turns/hosted_loop.py)
    compaction: r.CompactionBody | None = None  # context_management's item: the first output item
    # the store's failure to keep the finished answer (``remember``): a stream says it in its last
    # events; an answer collected whole from a stream is refused with it, as a plain whole one is
    unstored: ShimError | None = None
    # The request for another upstream of the route (its dialect, model and family's reasoning),
    # of the window being sent: upstream/failover.py. ``None`` on a one-upstream route.
    translate: Callable[[Resolved], c.ChatCompletionRequest] | None = None
    origins: dict[str, str] = field(default_factory=dict)  # reasoning id → family (families.py)


async def prepare(
    ctx: TurnContext,
    body: r.CreateResponseBody,
    resolved: Resolved,
    client_key: str | None,
    *,
    local: MutableMapping[str, StoredResponse] | None = None,
    stream: bool | None = None,
    unknown: tuple[str, ...] = (),
) -> Turn:
    check_create_body(body, ctx.limits)
    if resolved.route.kind != "chat":  # the handlers pass these through before getting here
        raise InvalidRequest(
            f"The route for {body.model!r} speaks Open Responses upstream; use POST /v1/responses.",
            param="model",
            code="unsupported_route",
        )
    diags = ctx.diagnostics()
    body = expand_prompt(body, ctx.prompts)  # `prompt` → instructions + input (conversation/prompts.py)
    hosted = hosted_loop.requested(ctx, body)  # a server not allowed: 400 before any connection
    checked = body if hosted is None else hosted_loop.checked_body(body, hosted)
    check_request_fields(
        checked, diags, unknown
    )  # refused before any store read (translate/request_fields.py)
    scopes = ctx.scopes(client_key)  # scope first: what this turn writes goes under it
    scope = scopes[0]
    history = await continue_from(
        ctx.store,
        scopes,
        body.previous_response_id,
        body.input,
        local=local,
        conversation=body.conversation,
        conversations=ctx.conversations,
    )
    items = history.window
    first_input = len(history.items)
    opened, sealed_by = ctx.sealed(*scopes).open_with_origins(items, first_input)  # sealed reasoning
    # Which family made each reasoning item (upstream/families.py): a route whose upstreams
    # span several families replays reasoning only to the family that made it.
    known = history.previous.reasoning_origins if history.previous is not None else {}
    made_by = [_origin(item, sealed, known) for item, sealed in zip(opened, sealed_by, strict=True)]
    origin_of = {id(item): made for item, made in zip(opened, made_by, strict=True) if made}
    origins = _origins(known, opened, made_by)
    inputs = len(items) - first_input  # the window's tail: never trimmed nor compacted
    mixed = mixed_families(resolved)
    own_family = family(resolved.dialect)  # what reasoning of unknown origin counts as
    # context_management: the turn goes on from the summary; its compaction item is output, so
    # what the turn stores (the whole window, then the output) starts from it next time
    compaction: r.CompactionBody | None = None
    compacted = await compact_past_threshold(ctx, body, resolved, client_key, opened)
    if compacted is not None:
        compaction, opened = compacted
    body = apply_route_policies(body, resolved.route, items)
    streaming = bool(body.stream) if stream is None else stream
    if resolved.dialect.request.stream_to_cancel and (body.background or resolved.route.cancel_json):
        # A cancel or a client hanging up closes the connection, which stops only a streamed
        # generation: such turns go streamed, collected by ``complete`` (Route.cancel_json).
        streaming = True
    chat_body = body
    if hosted is not None:  # tools listed (or reused), approved calls run, offered as functions
        chat_body, opened = await hosted_loop.start(
            ctx, hosted, body, opened, history.new_input, resolved.route
        )

    def build_for(target: Resolved, window: list[r.ItemParam], diags: Diagnostics) -> c.ChatCompletionRequest:
        if mixed:
            made = [origin_of.get(id(item)) for item in window]
            wanted = family(target.dialect)
            window = replayable(window, made, wanted, own_family, diags, max(0, len(window) - inputs))
        return to_chat_request(
            chat_body,
            window,
            model=target.upstream_model,
            dialect=target.dialect,
            diags=diags,
            stream=streaming,
        )

    def build(window: list[r.ItemParam], diags: Diagnostics = diags) -> c.ChatCompletionRequest:
        return build_for(resolved, window, diags)

    chat_request, fitting = fitted_request(
        chat_body, resolved, opened, build, ctx.truncation_retries, lambda w: build(w, ctx.diagnostics())
    )

    def translate(target: Resolved) -> c.ChatCompletionRequest:  # for a fallback (failover.py)
        window = fitting.truncation.current() if fitting is not None else opened
        with failover.reports_once(diags):
            return build_for(target, window, diags)

    store = body.store is not False and ctx.store is not None  # --store none: nothing kept
    template = response_template(
        body, response_id=ctx.ids("resp"), created_at=ctx.clock(), model=body.model or "", store=store
    )
    conversation = history.conversation.id if history.conversation is not None else None
    if conversation is not None:
        template.conversation = r.ConversationRef(id=conversation)
    if body.prompt is not None:
        template.prompt = body.prompt
    if hosted is not None:
        hosted.round_template = response_template(
            chat_body,
            response_id=template.id,
            created_at=template.created_at,
            model=template.model,
            store=store,
        )
        hosted_loop.echo(template, hosted)
    return Turn(
        body,
        resolved,
        scope,
        history.new_input,
        items,
        chat_request,
        template,
        diags,
        store,
        history.previous,
        conversation=conversation,
        conversation_scope=history.conversation_scope,
        fitting=fitting,
        hosted=hosted,
        compaction=compaction,
        translate=translate if resolved.fallbacks else None,
        origins=origins,
    )


def _origin(item: r.ItemParam, sealed: str | None, known: dict[str, str]) -> str | None:
    """Which family made a reasoning item: sealed with it, or recorded with the stored chain."""
    if not isinstance(item, r.ReasoningItemParam):
        return None
    return sealed or (known.get(item.id) if item.id else None)


def _origins(known: dict[str, str], items: list[r.ItemParam], made_by: list[str | None]) -> dict[str, str]:
    """The chain's record of reasoning origins, with what the request's sealed items told."""
    found = {
        item.id: origin
        for item, origin in zip(items, made_by, strict=True)
        if origin and isinstance(item, r.ReasoningItemParam) and item.id
    }
    return {**known, **found} if found else known


async def remember(
    ctx: TurnContext,
    turn: Turn,
    resource: r.ResponseResource,
    local: MutableMapping[str, StoredResponse] | None = None,
) -> None:
    # Who reads the record's history: the store, a WebSocket's ``local`` records, a conversation,
    # a background task (it writes the record itself, with ``turn.store`` off). Otherwise only the
    # resource is read, and the history (the window plus the output as input items) is not built:
    # 1,000 streams ending at once held it together (bench/README.md, issue 18).
    kept = local is not None or turn.store or turn.conversation is not None or bool(turn.body.background)
    stored = StoredResponse(
        resource=resource,
        input_items=turn.new_input,
        history=[*turn.items, *output_to_input(resource.output)] if kept else [],
        scope=turn.scope,
        reasoning_origins=(
            {**turn.origins, **origins_of(resource.output, family(turn.resolved.dialect))} if kept else {}
        ),
    )
    turn.stored = stored
    usage = resource.usage
    note_usage(usage.input_tokens if usage else None, usage.output_tokens if usage else None)
    if local is not None:
        local[resource.id] = stored
    try:
        if turn.store and ctx.store is not None:
            await ctx.store.save(turn.scope, stored)
        if turn.conversation is not None:  # input and output as one block (conversation_items.py)
            output = stored.history[len(turn.items) :]
            await turn_finished(ctx.conversations, turn, output, resource.status, ctx.ids)
    except ShimError as exc:
        turn.unstored = exc
        raise


async def complete(
    ctx: TurnContext, turn: Turn, local: MutableMapping[str, StoredResponse] | None = None
) -> r.ResponseResource:
    """The whole answer. A store failure after the upstream answered is a 503
    ``store_unavailable``: an id the client gets is always one it can continue from."""
    if turn.hosted is not None:
        return await hosted_loop.complete(ctx, turn, local)
    if turn.chat_request.stream:
        return await _collected(ctx, turn, local)
    response, turn.chat_request, turn.resolved = await send_fitted(
        ctx, turn.resolved, turn.fitting, turn.chat_request, stream=False, translate=turn.translate
    )
    try:
        resource = chat_completion_to_response(
            turn.template,
            turn.resolved.dialect,
            response.content,
            ids=ctx.ids,
            clock=ctx.clock,
            include_logprobs=wants_logprobs(turn.body),
        )
        if wants_sealed_reasoning(turn.body.include):
            ctx.sealed(turn.scope).seal_reasoning(resource.output, family(turn.resolved.dialect))
        if turn.compaction is not None:
            resource.output.insert(0, turn.compaction)
    except msgspec.DecodeError as exc:  # ValidationError included: a 200 that is no completion
        raise UpstreamInvalidResponse(f"The upstream's answer is not a Chat completion: {exc}") from None
    await remember(ctx, turn, resource, local)
    return resource


async def _collected(
    ctx: TurnContext, turn: Turn, local: MutableMapping[str, StoredResponse] | None
) -> r.ResponseResource:
    """A turn prepared streamed (a background turn, ``stream_to_cancel``) run whole: the stream
    is drained here, so cancelling this coroutine closes the upstream connection."""
    response = await open_stream(ctx, turn)
    async for _ in event_batches(ctx, turn, response, local):
        pass
    assert turn.stored is not None, "the stream's end remembers the turn"
    if turn.unstored is not None:  # nobody could retrieve it: refused, as a plain whole answer is
        raise turn.unstored
    resource = turn.stored.resource
    if resource.status == "failed" and resource.error is not None:
        if _said_nothing(resource) and not turn.body.background:
            # llama-cpp-python refuses a stream it cannot serve (a context overflow) with an
            # empty 200; unstreamed, the same request says why (400 context_length_exceeded,
            # which truncation "auto" can act on). Nothing was generated, so nothing is redone.
            turn.chat_request = msgspec.structs.replace(turn.chat_request, stream=None, stream_options=None)
            return await complete(ctx, turn, local)
        raise UpstreamError(resource.error.message, code=resource.error.code)
    return resource


def _said_nothing(resource: r.ResponseResource) -> bool:
    """The upstream's stream ended before its first event."""
    return (
        resource.error is not None
        and resource.error.code == "upstream_stream_truncated"
        and all(isinstance(item, r.CompactionBody) for item in resource.output)
    )


async def open_stream(ctx: TurnContext, turn: Turn) -> httpx.Response:
    """The route's first upstream that answers (upstream/failover.py); the turn reads it, and any
    later round, with that one (``turn.resolved``)."""
    response, turn.chat_request, turn.resolved = await send_fitted(
        ctx, turn.resolved, turn.fitting, turn.chat_request, stream=True, translate=turn.translate
    )
    return response


def fail_after_finish(tail: list[r.StreamingEvent], error: ShimError) -> list[r.StreamingEvent]:
    """A finished stream's last batch with its ``response.completed`` / ``incomplete`` replaced
    by ``error`` + ``response.failed`` carrying ``error`` (sequence numbers continue). A tail that
    already failed is left as it is: its own error is the one worth telling."""
    terminal = tail[-1] if tail else None
    if not isinstance(terminal, r.ResponseCompletedStreamingEvent | r.ResponseIncompleteStreamingEvent):
        return tail
    code = error.code or "server_error"
    failed = msgspec.structs.replace(
        terminal.response,
        status="failed",
        error=r.ResponseError(code=code, message=error.message),
        completed_at=None,
        incomplete_details=None,
    )
    seq = terminal.sequence_number
    payload = r.ErrorPayload(type=error.type, code=code, message=error.message, param=error.param)
    return [
        *tail[:-1],
        r.ErrorStreamingEvent(sequence_number=seq, error=payload),
        r.ResponseFailedStreamingEvent(sequence_number=seq + 1, response=failed),
    ]


class EventsTranslation:
    """``ChatToResponsesStream`` for the pump: Chat SSE (or, for an upstream that could not
    stream this request, one whole completion) in, Open Responses events out, reasoning sealed
    for a client that asked for it."""

    def __init__(
        self,
        ctx: TurnContext,
        turn: Turn,
        template: r.ResponseResource | None = None,
        chat_request: c.ChatCompletionRequest | None = None,
    ) -> None:
        # ``template`` and ``chat_request``: a hosted round's, in place of the turn's.
        self.driver = ChatToResponsesStream(
            turn.template if template is None else template,
            turn.resolved.dialect,
            ids=ctx.ids,
            clock=ctx.clock,
            include_logprobs=wants_logprobs(turn.body),
        )
        self.sealed: SealedItems | None = (
            ctx.sealed(turn.scope) if wants_sealed_reasoning(turn.body.include) else None
        )
        self.family = family(turn.resolved.dialect)  # the upstream that answers (after any failover)
        self.compaction = turn.compaction
        self.streamed = bool((turn.chat_request if chat_request is None else chat_request).stream)
        self.whole = bytearray()  # the body of an unstreamed answer
        self.stopped = False

    def start(self) -> list[r.StreamingEvent]:
        events = self.driver.start()
        if self.compaction is not None:  # before the answer, as OpenAI's compaction streams it
            events += self.driver.writer.add_item(self.compaction)
        return events

    def feed(self, data: bytes) -> list[r.StreamingEvent]:
        if not self.streamed:
            self.whole += data
            return []
        return self._sealed(self.driver.feed(data))

    def finish(self) -> list[r.StreamingEvent]:
        if self.streamed:
            return self._sealed(self.driver.finish(truncated=True))
        driver = self.driver
        return self._sealed(driver.feed_completion(bytes(self.whole)) + driver.finish())

    def fail(self, error: UpstreamError) -> list[r.StreamingEvent]:
        return self._sealed(self.driver.fail(ErrorDelta.of(error)))

    def unstored(self, tail: list[r.StreamingEvent], error: ShimError) -> list[r.StreamingEvent]:
        return fail_after_finish(tail, error)

    def _sealed(self, events: list[T]) -> list[T]:
        """``events`` with their reasoning sealed; bytes (a framed run of text deltas) carry none."""
        if self.sealed is not None:
            for event in events:
                if not isinstance(event, bytes):
                    self.sealed.seal_event(event, self.family)
        return events


Framed = r.StreamingEvent | bytes  # an event, or the SSE bytes of a run of text deltas


class FramedTranslation:
    """``EventsTranslation`` for an SSE client: a run of plain text deltas comes as the bytes
    the client gets (``ChatToResponsesStream.feed_framed``, issue 18), every other event as a
    struct, redacted and sealed as ever (text deltas carry neither a message nor an item)."""

    def __init__(self, events: EventsTranslation) -> None:
        self.events = events
        self.driver = events.driver

    @property
    def stopped(self) -> bool:
        return self.events.stopped

    def start(self) -> list[Framed]:
        return [*self.events.start()]

    def feed(self, data: bytes) -> list[Framed]:
        events = self.events
        if not events.streamed:
            return [*events.feed(data)]
        return events._sealed(self.driver.feed_framed(data))

    def finish(self) -> list[Framed]:
        return [*self.events.finish()]

    def fail(self, error: UpstreamError) -> list[Framed]:
        return [*self.events.fail(error)]

    def unstored(self, tail: list[Framed], error: ShimError) -> list[Framed]:
        # ``finish`` and ``fail`` give structs only: the last batch is events.
        events = [event for event in tail if not isinstance(event, bytes)]
        return [*fail_after_finish(events, error)] if len(events) == len(tail) else tail


def sse_batches(
    ctx: TurnContext, turn: Turn, response: httpx.Response
) -> AsyncIterator[Sequence[Framed] | None]:
    """``event_batches`` for an SSE client: runs of text deltas as their bytes already."""
    if turn.hosted is not None:
        return hosted_loop.sse_batches(ctx, turn, response)
    translation = FramedTranslation(EventsTranslation(ctx, turn))
    return _pumped(ctx, turn, response, translation, translation.driver, None, last=True)


def event_batches(
    ctx: TurnContext,
    turn: Turn,
    response: httpx.Response,
    local: MutableMapping[str, StoredResponse] | None = None,
) -> AsyncIterator[list[r.StreamingEvent] | None]:
    """Client events grouped by the upstream chunk they came from (none empty), so a writer can
    send them in one message: per-message costs (ASGI send chain, a socket write) were over a
    third of a streamed answer's CPU (bench/README.md). ``None`` marks a keep-alive moment."""
    if turn.hosted is not None:
        return hosted_loop.event_batches(ctx, turn, response, local)
    translation = EventsTranslation(ctx, turn)
    return _pumped(ctx, turn, response, translation, translation.driver, local)


def _pumped(
    ctx: TurnContext,
    turn: Turn,
    response: httpx.Response,
    translation: Translation[T],
    driver: ChatToResponsesStream,
    local: MutableMapping[str, StoredResponse] | None,
    *,
    last: bool = False,
) -> AsyncIterator[list[T] | None]:
    async def finished() -> None:
        failure = driver.response.error
        if failure is not None:  # vendors echo keys in error messages; the record keeps none
            failure.message = redact(failure.message, turn.resolved.upstream_key)
        await remember(ctx, turn, driver.response, local)

    return pump(
        response,
        translation,
        ctx.timing,
        EventRedactor(turn.resolved.upstream_key),
        on_finish=finished,
        decoded=not turn.chat_request.stream,
        last=last,
    )


async def events(
    ctx: TurnContext,
    turn: Turn,
    response: httpx.Response,
    local: MutableMapping[str, StoredResponse] | None = None,
) -> AsyncIterator[r.StreamingEvent | None]:
    """``event_batches`` one event at a time (WebSocket frames)."""
    async for batch in event_batches(ctx, turn, response, local):
        if batch is None:
            yield None
            continue
        for event in batch:
            yield event

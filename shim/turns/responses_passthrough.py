"""``POST /v1/responses`` on a route whose upstream already speaks Open Responses.

A stateful upstream (``stateful = true``, e.g. OpenAI) gets the client's body unchanged, except
``model`` when the route renames it. A stateless one (Ollama's rejects ``previous_response_id``)
gets ``previous_response_id`` expanded by the shim: the stored history of that response plus
the new input, in one store read; the upstream's answer is then stored under the upstream's own
response id with its materialised history, so the client can chain from it as from any
stateful server. ``conversation`` is expanded the same way, and the turn's items appended to it
when it ends. The answer's bytes go back to the client unchanged, streamed or not, except that
on a conversation every response in them names it (events re-written one by one).

The request limits apply as on every route (``check_create_body``); history follows the one rule
of ``conversation/history.py``. When the answer is to be stored, its terminal event is held back
until the record is written: a store that fails then ends the stream with ``error`` +
``response.failed`` (``store_unavailable``) instead of an answer whose id leads nowhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from shim.conversation.conversation_items import turn_finished
from shim.conversation.history import continue_from
from shim.core.diagnostics import Diagnostics
from shim.errors import ShimError, UpstreamError
from shim.limits import check_create_body
from shim.sse import SSEDecoder, encode_tagged
from shim.store.repository import StoredResponse
from shim.translate.history import output_to_input, string_input
from shim.translate.responses_request import encode_create_response_body
from shim.turns.context import TurnContext
from shim.turns.pump import pump
from shim.turns.responses_over_chat import fail_after_finish
from shim.upstream import failover
from shim.upstream.families import family, mixed_families, origins_of, replayable
from shim.upstream.redaction import ByteRedactor
from shim.upstream.routing import Resolved
from shim.wire import responses as r
from shim.wire.responses_decode import decode_resource

__all__ = ["PassthroughStream", "PassthroughTurn", "chunks", "complete", "open_stream", "prepare", "remember"]

_any = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass
class PassthroughTurn:
    resolved: Resolved
    scope: str
    body: bytes
    new_input: list[r.ItemParam]
    history: list[r.ItemParam]
    store: bool  # remember the answer (stateless upstream, client did not say store: false)
    conversation: str | None = None  # named in the answer; its items appended when it ends
    conversation_scope: str | None = None  # where it lives (an older secret's scope after a rotation)
    # A route whose upstreams span dialect families: the body for each (upstream/families.py).
    body_for: Callable[[Resolved], bytes] | None = None
    origins: dict[str, str] = field(default_factory=dict)  # reasoning id → family, of the chain
    diags: Diagnostics = field(default_factory=Diagnostics)

    @property
    def reads_answer(self) -> bool:
        """Does the shim need the answer's resource (to store it, or for the conversation)?"""
        return self.store or self.conversation is not None


def _items_json(items: list[r.ItemParam]) -> Any:
    """Items as JSON values, unset fields left out (as everything the shim sends upstream)."""
    return _any.decode(encode_create_response_body(r.CreateResponseBody(input=items)))["input"]


async def prepare(
    ctx: TurnContext, raw: bytes, body: r.CreateResponseBody, resolved: Resolved, client_key: str | None
) -> PassthroughTurn:
    check_create_body(body, ctx.limits)
    scope = ctx.scope(client_key)
    data = _any.decode(raw)
    data["model"] = resolved.upstream_model
    if resolved.route.stateful:  # the upstream keeps its own state, its conversations included
        return PassthroughTurn(resolved, scope, _encoder.encode(data), [], [], False)
    history = await continue_from(
        ctx.store,
        ctx.scopes(client_key),
        body.previous_response_id,
        body.input,
        conversation=body.conversation,
        conversations=ctx.conversations,
    )
    data.pop("previous_response_id", None)
    data.pop("conversation", None)
    if history.items or history.new_input != string_input(body.input):
        data["input"] = _items_json(history.window)
    store = body.store is not False and ctx.store is not None
    conversation = history.conversation.id if history.conversation is not None else None
    known = history.previous.reasoning_origins if history.previous is not None else {}
    turn = PassthroughTurn(
        resolved,
        scope,
        _encoder.encode(data),
        history.new_input,
        history.items,
        store,
        conversation,
        history.conversation_scope,
        origins=known,
        diags=ctx.diagnostics(),
    )
    if mixed_families(resolved):  # a vendor's reasoning blobs go back only to its family
        turn.body_for = _bodies(turn, data, history.window, len(history.items), known)
    return turn


def _bodies(
    turn: PassthroughTurn,
    data: dict[str, Any],
    window: list[r.ItemParam],
    first_input: int,
    known: dict[str, str],
) -> Callable[[Resolved], bytes]:
    """The body for each upstream of a route whose upstreams span dialect families: reasoning
    only for the family that made it (``upstream/families.py``); unknown counts as the route's own."""
    made_by = [
        known.get(item.id) if isinstance(item, r.ReasoningItemParam) and item.id else None for item in window
    ]
    own = family(turn.resolved.dialect)

    def body_for(target: Resolved) -> bytes:
        with failover.reports_once(turn.diags):
            items = replayable(window, made_by, family(target.dialect), own, turn.diags, first_input)
        if items is window and target.upstream_model == data["model"]:
            return turn.body
        changed = {"model": target.upstream_model} | (
            {} if items is window else {"input": _items_json(items)}
        )
        return _encoder.encode({**data, **changed})

    return body_for


async def remember(ctx: TurnContext, turn: PassthroughTurn, resource: r.ResponseResource) -> None:
    output = output_to_input(resource.output)
    if turn.store and ctx.store is not None and resource.id:
        stored = StoredResponse(
            resource=resource,
            input_items=turn.new_input,
            history=[*turn.history, *turn.new_input, *output],
            scope=turn.scope,
            reasoning_origins={**turn.origins, **origins_of(resource.output, family(turn.resolved.dialect))},
        )
        await ctx.store.save(turn.scope, stored)
    if turn.conversation is not None:  # input and output as one block (conversation_items.py)
        await turn_finished(ctx.conversations, turn, output, resource.status, ctx.ids)


async def complete(ctx: TurnContext, turn: PassthroughTurn) -> bytes:
    response = await _send(ctx, turn, stream=False)
    content = response.content
    if turn.reads_answer:
        try:
            resource = decode_resource(content)
        except msgspec.DecodeError:
            pass  # not ours to judge: the client gets the upstream's bytes as they are
        else:
            if turn.conversation is not None:  # the one change to the bytes: naming it
                content = _with_conversation(content.decode(), turn.conversation).encode()
                resource.conversation = r.ConversationRef(id=turn.conversation)
            await remember(ctx, turn, resource)
    return content


async def open_stream(ctx: TurnContext, turn: PassthroughTurn) -> httpx.Response:
    return await _send(ctx, turn, stream=True)


async def _send(ctx: TurnContext, turn: PassthroughTurn, *, stream: bool) -> httpx.Response:
    """The route's first upstream that answers (``upstream/failover.py``), under its model name."""
    first = turn.resolved

    def request(target: Resolved) -> bytes:
        if turn.body_for is not None:
            return turn.body_for(target)
        same = target.upstream_model == first.upstream_model
        return turn.body if same else failover.with_model(turn.body, target.upstream_model)

    response, turn.resolved = await failover.send(ctx.upstream, first, "/responses", request, stream=stream)
    return response


def chunks(
    ctx: TurnContext, turn: PassthroughTurn, response: httpx.Response
) -> AsyncIterator[list[bytes] | None]:
    """The pump over ``PassthroughStream``; the terminal event's response is remembered."""
    translation = PassthroughStream(turn.store, turn.conversation)

    async def finished() -> None:
        if translation.final is not None:
            await remember(ctx, turn, translation.final)

    redactor = ByteRedactor(turn.resolved.upstream_key)
    return pump(response, translation, ctx.timing, redactor, on_finish=finished, last=True)


def _with_conversation(data: str, conversation: str) -> str:
    """An event's (or a whole answer's) JSON with its response naming the conversation; anything
    else unchanged."""
    try:
        value = _any.decode(data)
    except msgspec.DecodeError:
        return data
    if not isinstance(value, dict):
        return data
    target = value.get("response") if value.get("object") != "response" else value
    if not isinstance(target, dict):
        return data
    target["conversation"] = {"id": conversation}
    return _encoder.encode(value).decode()


def _sse_block(name: str | None, data: str) -> bytes:
    head = f"event: {name}\n" if name else ""
    return (head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n").encode()


class PassthroughStream:
    """The upstream's bytes unchanged, except on a conversation, where each event carrying the
    response is re-written to name it. When storing (or on a conversation), events are decoded
    to find the terminal one; from the read that carries it on, bytes are held until the record
    is written."""

    stopped = False

    def __init__(self, store: bool, conversation: str | None = None) -> None:
        self.decoder = SSEDecoder() if store or conversation is not None else None
        self.conversation = conversation
        self.final: r.ResponseResource | None = None
        self.sequence = 0  # the terminal event's sequence number
        self.held: list[bytes] = []

    def start(self) -> list[bytes]:
        return []

    def feed(self, data: bytes) -> list[bytes]:
        decoder = self.decoder
        if decoder is None:
            return [data]
        events: list[tuple[str | None, str]] = []
        if self.conversation is not None:
            events = [(e.event, _with_conversation(e.data, self.conversation)) for e in decoder.feed(data)]
            data = b"".join(_sse_block(name, text) for name, text in events)
        elif self.final is None:
            events = [(e.event, e.data) for e in decoder.feed(data)]
        if self.final is None:
            for name, text in events:
                self._terminal(name, text)
            if self.final is None:
                return [data] if data else []
        if data:
            self.held.append(data)
        return []

    def finish(self) -> list[bytes]:
        if self.conversation is not None and self.decoder is not None:  # an unterminated last event
            rest = self.decoder.finish()
            self.held += [_sse_block(e.event, _with_conversation(e.data, self.conversation)) for e in rest]
        held, self.held = self.held, []
        return held

    def fail(self, error: UpstreamError) -> list[bytes]:
        if self.final is not None:  # the answer was whole: the upstream closing after it is harmless
            return self.finish()
        payload = r.ErrorPayload(type=error.type, code=error.code, message=error.message, param=error.param)
        return [encode_tagged(r.ErrorStreamingEvent(sequence_number=self.sequence + 1, error=payload))]

    def unstored(self, tail: list[bytes], error: ShimError) -> list[bytes]:
        if self.final is None or self.final.status == "failed":
            return tail
        terminal = r.ResponseCompletedStreamingEvent(sequence_number=self.sequence, response=self.final)
        return [b"".join(encode_tagged(event) for event in fail_after_finish([terminal], error))]

    def _terminal(self, name: str | None, data: str) -> None:
        if name not in _TERMINAL and not any(t in data for t in _TERMINAL):
            return
        try:
            event = _any.decode(data)
            if event.get("type", name) in _TERMINAL and isinstance(event.get("response"), dict):
                self.final = msgspec.convert(event["response"], r.ResponseResource)
                sequence = event.get("sequence_number")
                self.sequence = sequence if isinstance(sequence, int) else 0
        except (msgspec.DecodeError, AttributeError):
            return

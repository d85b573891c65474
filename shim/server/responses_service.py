"""One Open Responses turn over a Chat upstream, independent of HTTP or WebSocket framing.

``prepare`` resolves the route, expands ``previous_response_id`` (one store read), resolves
item references and translates the request; ``complete`` runs it whole; ``open_stream`` +
``events`` run it as a stream. A response is remembered only when it finished (completed,
incomplete or failed) — a client that went away mid-stream gets nothing stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field

import httpx
import msgspec

from shim.core.deltas import ErrorDelta
from shim.core.diagnostics import Diagnostics, Policy
from shim.errors import InvalidRequest, PreviousResponseNotFound, UpstreamError
from shim.ids import Clock, IdFactory
from shim.keyring import Keyring
from shim.limits import Limits, check_create_body
from shim.redaction import redact, redact_event
from shim.routing import Resolved, Router
from shim.sealing import Sealer
from shim.server.keepalive import with_keepalive
from shim.server.sealed_items import SealedItems, wants_sealed_reasoning
from shim.settings import Route
from shim.store.repository import PENDING, ResponseStore, StoredResponse
from shim.telemetry import note_usage
from shim.translate.chat_request import to_chat_request
from shim.translate.compaction import compaction_config
from shim.translate.echo import response_template
from shim.translate.history import output_to_input, string_input
from shim.translate.pipeline import ChatToResponsesStream, chat_completion_to_response, wants_logprobs
from shim.translate.tool_rounds import tool_rounds
from shim.upstream import UpstreamClient, UpstreamInvalidStream, stream_failure
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = ["KEEPALIVE", "ResponsesService", "Turn"]

KEEPALIVE = None  # yielded by ``events`` when the upstream has been silent for a while


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


def _resolve_references(items: list[r.ItemParam], history: list[r.ItemParam]) -> list[r.ItemParam]:
    if not any(isinstance(i, r.ItemReferenceParam) for i in items):
        return items
    known = {getattr(i, "id", None): i for i in history if getattr(i, "id", None)}
    out: list[r.ItemParam] = []
    for n, item in enumerate(items):
        if isinstance(item, r.ItemReferenceParam):
            found = known.get(item.id)
            if found is None:
                raise InvalidRequest(
                    f"Item {item.id!r} was not found.", param=f"input[{n}].id", code="not_found"
                )
            out.append(found)
        else:
            out.append(item)
    return out


def _route_policies(
    body: r.CreateResponseBody, route: Route, items: list[r.ItemParam]
) -> r.CreateResponseBody:
    """The route's settings for small models: its loop guard, and its output limit, temperature
    and stop sequences for requests that set none. Stop sequences go only with requests whose
    answer must be text: one inside a call's arguments would cut their JSON."""
    changes: dict[str, object] = {}
    if body.max_output_tokens is None and route.max_output_tokens is not None:
        changes["max_output_tokens"] = route.max_output_tokens
    if body.temperature is None and route.temperature is not None:
        changes["temperature"] = route.temperature
    tool_choice = body.tool_choice
    if route.max_tool_rounds is not None and body.tools and tool_rounds(items) >= route.max_tool_rounds:
        changes["tool_choice"] = tool_choice = "none"  # the loop guard: answer now
    if body.stop is None and route.stop and (not body.tools or tool_choice == "none"):
        changes["stop"] = list(route.stop)
    return msgspec.structs.replace(body, **changes) if changes else body


class ResponsesService:
    def __init__(
        self,
        *,
        router: Router,
        upstream: UpstreamClient,
        store: ResponseStore | None,
        keyring: Keyring,
        policy: Policy,
        ids: IdFactory,
        clock: Clock,
        keepalive: float = 15.0,
        idle: float = 300.0,
    ) -> None:
        self.router = router
        self.upstream = upstream
        self.store = store
        self.keyring = keyring
        self.sealer = Sealer(keyring.current, keyring.previous)
        self.compaction = compaction_config()  # validated at start-up, not at first use
        self.policy = policy
        self.ids = ids
        self.clock = clock
        self.keepalive = keepalive
        self.idle = idle

    limits = Limits()  # create_app sets the configured ones

    def scope(self, client_key: str | None) -> str:
        """The caller's scope: what it writes and seals goes under it."""
        return self.keyring.scope(client_key)

    def scopes(self, client_key: str | None) -> tuple[str, ...]:
        """Every scope the caller's records may be under: the current one, then those of the
        previous secrets (rotation: shim.keyring)."""
        return self.keyring.scopes(client_key)

    def sealed(self, scope: str, *previous: str) -> SealedItems:
        """Seals under ``scope``; opens under it or the ``previous`` secrets' scopes."""
        return SealedItems(self.sealer, scope, self.compaction, previous)

    async def prepare(
        self,
        body: r.CreateResponseBody,
        client_key: str | None,
        *,
        local: MutableMapping[str, StoredResponse] | None = None,
        stream: bool | None = None,
    ) -> Turn:
        check_create_body(body, self.limits)
        resolved = self.router.resolve(body.model, client_key)
        if resolved.route.kind == "responses":  # HTTP passes these through before getting here
            raise InvalidRequest(
                f"The route for {body.model!r} speaks Open Responses upstream; use POST /v1/responses.",
                param="model",
                code="unsupported_route",
            )
        scope = self.scope(client_key)
        new_input = string_input(body.input)
        previous: StoredResponse | None = None
        history: list[r.ItemParam] = []
        if body.previous_response_id is not None:  # "" is an id that names nothing, not "no id"
            if local is not None:
                previous = local.get(body.previous_response_id)
            if previous is None and self.store is not None:
                previous = await self.store.load_any(self.scopes(client_key), body.previous_response_id)
            if previous is None:
                raise PreviousResponseNotFound(
                    f"Previous response with id {body.previous_response_id!r} not found.",
                    param="previous_response_id",
                )
            if previous.resource.status in PENDING:  # a background response has no output yet
                raise InvalidRequest(
                    f"Previous response {body.previous_response_id!r} is still {previous.resource.status}.",
                    param="previous_response_id",
                    code="previous_response_pending",
                )
            history = previous.history
        new_input = _resolve_references(new_input, history)
        items = [*history, *new_input]
        body = _route_policies(body, resolved.route, items)
        diags = Diagnostics(self.policy)
        streaming = bool(body.stream) if stream is None else stream
        chat_request = to_chat_request(
            body,
            self.sealed(*self.scopes(client_key)).open_items(items, len(history)),  # sealed items opened
            model=resolved.upstream_model,
            dialect=resolved.dialect,
            diags=diags,
            stream=streaming,
        )
        store = body.store is not False
        template = response_template(
            body, response_id=self.ids("resp"), created_at=self.clock(), model=body.model or "", store=store
        )
        return Turn(body, resolved, scope, new_input, items, chat_request, template, diags, store, previous)

    async def remember(
        self,
        turn: Turn,
        resource: r.ResponseResource,
        local: MutableMapping[str, StoredResponse] | None = None,
    ) -> None:
        stored = StoredResponse(
            resource=resource,
            input_items=turn.new_input,
            history=[*turn.items, *output_to_input(resource.output)],
            scope=turn.scope,
        )
        turn.stored = stored
        usage = resource.usage
        note_usage(usage.input_tokens if usage else None, usage.output_tokens if usage else None)
        if local is not None:
            local[resource.id] = stored
        if turn.store and self.store is not None:
            await self.store.save(turn.scope, stored)

    async def complete(
        self, turn: Turn, local: MutableMapping[str, StoredResponse] | None = None
    ) -> r.ResponseResource:
        response = await self.upstream.send(
            turn.resolved, "/chat/completions", c.encode_chat_request(turn.chat_request), stream=False
        )
        try:
            resource, _ = chat_completion_to_response(
                turn.template,
                turn.resolved.dialect,
                response.content,
                ids=self.ids,
                clock=self.clock,
                include_logprobs=wants_logprobs(turn.body),
            )
            if wants_sealed_reasoning(turn.body.include):
                self.sealed(turn.scope).seal_reasoning(resource.output)
        except msgspec.DecodeError as exc:  # ValidationError included: a 200 that is no completion
            raise UpstreamError(
                f"The upstream's answer is not a Chat completion: {exc}", code="upstream_invalid_response"
            ) from None
        await self.remember(turn, resource, local)
        return resource

    async def open_stream(self, turn: Turn) -> httpx.Response:
        return await self.upstream.send(
            turn.resolved, "/chat/completions", c.encode_chat_request(turn.chat_request), stream=True
        )

    async def events(
        self,
        turn: Turn,
        response: httpx.Response,
        local: MutableMapping[str, StoredResponse] | None = None,
    ) -> AsyncIterator[r.StreamingEvent | None]:
        """Client events; ``None`` marks a keep-alive moment. Closing the iterator early
        (client gone) cancels the upstream request and stores nothing."""
        async for batch in self.event_batches(turn, response, local):
            if batch is None:
                yield KEEPALIVE
                continue
            for event in batch:
                yield event

    async def event_batches(
        self,
        turn: Turn,
        response: httpx.Response,
        local: MutableMapping[str, StoredResponse] | None = None,
    ) -> AsyncIterator[list[r.StreamingEvent] | None]:
        """``events``, grouped by the upstream chunk they came from (none empty), so a writer
        can send them in one message: per-message costs (ASGI send chain, a socket write)
        were over a third of a streamed answer's CPU (bench/README.md)."""
        translator = ChatToResponsesStream(
            turn.template,
            turn.resolved.dialect,
            ids=self.ids,
            clock=self.clock,
            include_logprobs=wants_logprobs(turn.body),
        )
        sealed = self.sealed(turn.scope) if wants_sealed_reasoning(turn.body.include) else None
        key = turn.resolved.upstream_key
        try:
            first = translator.start()
            if first:
                yield first
            try:
                if turn.chat_request.stream:
                    async for chunk in with_keepalive(response.aiter_raw(), self.keepalive, self.idle):
                        if chunk is None:
                            yield KEEPALIVE
                            continue
                        batch = translator.feed(chunk)
                        for event in batch:
                            if sealed is not None:
                                sealed.seal_event(event)
                            redact_event(event, key)  # vendors echo keys in error messages
                        if batch:
                            yield batch
                    tail = translator.finish(truncated=True)
                else:  # an upstream that could not stream this request: its whole answer, replayed
                    whole = bytearray()
                    async for piece in with_keepalive(response.aiter_bytes(), self.keepalive, self.idle):
                        if piece is None:
                            yield KEEPALIVE
                        else:
                            whole += piece
                    tail = translator.feed_completion(bytes(whole)) + translator.finish()
            except (httpx.TimeoutException, TimeoutError, httpx.TransportError) as exc:
                message, code = stream_failure(exc)  # idle/total timeout, reset, size limit
                tail = translator.fail(ErrorDelta(message, code=code))
            except msgspec.DecodeError:  # no chunk, or no completion: the answer cannot be trusted
                message, code = stream_failure(UpstreamInvalidStream())
                tail = translator.fail(ErrorDelta(message, code=code))
            for event in tail:
                if sealed is not None:
                    sealed.seal_event(event)
                redact_event(event, key)
            failure = translator.response.error
            if failure is not None:
                failure.message = redact(failure.message, key)
            # Stored before the terminal event goes out: a client may continue the chain at once.
            await self.remember(turn, translator.response, local)
            if tail:
                yield tail
        finally:
            await response.aclose()

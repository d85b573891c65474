"""``POST /v1/responses`` on a route whose upstream already speaks Open Responses.

A stateful upstream (``stateful = true``, e.g. OpenAI) gets the client's body unchanged, except
``model`` when the route renames it. A stateless one (Ollama's rejects ``previous_response_id``)
gets ``previous_response_id`` expanded by the shim: the stored history of that response plus
the new input, in one store read; the upstream's answer is then stored under the upstream's own
response id with its materialised history, so the client can chain from it as from any
stateful server. The answer's bytes go back to the client unchanged, streamed or not.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from shim.errors import PreviousResponseNotFound
from shim.routing import Resolved
from shim.server.keepalive import with_keepalive
from shim.server.responses_service import ResponsesService, _resolve_references
from shim.sse import KEEPALIVE, SSEDecoder, encode_event
from shim.store.repository import StoredResponse
from shim.translate.history import output_to_input, string_input
from shim.translate.responses_request import encode_create_response_body
from shim.wire import responses as r
from shim.wire.responses_decode import decode_resource

__all__ = ["PassthroughTurn", "ResponsesPassthrough"]

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


def _items_json(items: list[r.ItemParam]) -> Any:
    """Items as JSON values, unset fields left out (as everything the shim sends upstream)."""
    return _any.decode(encode_create_response_body(r.CreateResponseBody(input=items)))["input"]


class ResponsesPassthrough:
    def __init__(self, service: ResponsesService) -> None:
        self.service = service

    async def prepare(
        self, raw: bytes, body: r.CreateResponseBody, resolved: Resolved, client_key: str | None
    ) -> PassthroughTurn:
        service = self.service
        scope = service.scope(client_key)
        data = _any.decode(raw)
        data["model"] = resolved.upstream_model
        if resolved.route.stateful:
            return PassthroughTurn(resolved, scope, _encoder.encode(data), [], [], False)
        history: list[r.ItemParam] = []
        if body.previous_response_id:
            previous = None
            if service.store is not None:
                previous = await service.store.load_any(service.scopes(client_key), body.previous_response_id)
            if previous is None:
                raise PreviousResponseNotFound(
                    f"Previous response with id {body.previous_response_id!r} not found.",
                    param="previous_response_id",
                )
            history = previous.history
        data.pop("previous_response_id", None)
        new_input = _resolve_references(string_input(body.input), history)
        if history or new_input != string_input(body.input):
            data["input"] = _items_json([*history, *new_input])
        store = body.store is not False and service.store is not None
        return PassthroughTurn(resolved, scope, _encoder.encode(data), new_input, history, store)

    async def remember(self, turn: PassthroughTurn, resource: r.ResponseResource) -> None:
        if not turn.store or self.service.store is None or not resource.id:
            return
        stored = StoredResponse(
            resource=resource,
            input_items=turn.new_input,
            history=[*turn.history, *turn.new_input, *output_to_input(resource.output)],
            scope=turn.scope,
        )
        await self.service.store.save(turn.scope, stored)

    async def complete(self, turn: PassthroughTurn) -> bytes:
        response = await self.service.upstream.send(turn.resolved, "/responses", turn.body, stream=False)
        if turn.store:
            # Not ours to judge: the client gets the upstream's bytes as they are.
            with contextlib.suppress(msgspec.DecodeError):
                await self.remember(turn, decode_resource(response.content))
        return response.content

    async def open_stream(self, turn: PassthroughTurn) -> httpx.Response:
        return await self.service.upstream.send(turn.resolved, "/responses", turn.body, stream=True)

    async def chunks(self, turn: PassthroughTurn, response: httpx.Response) -> AsyncIterator[bytes]:
        """The upstream's bytes unchanged; the terminal event's response is remembered."""
        decoder = SSEDecoder()
        final: r.ResponseResource | None = None
        service = self.service
        try:
            async for data in with_keepalive(response.aiter_raw(), service.keepalive, service.idle):
                if data is None:
                    yield KEEPALIVE
                    continue
                if turn.store:
                    for event in decoder.feed(data):
                        final = self._terminal(event.event, event.data) or final
                yield data
            if turn.store and final is not None:
                await self.remember(turn, final)
        except (httpx.TimeoutException, TimeoutError, httpx.TransportError) as exc:
            timeout = not isinstance(exc, httpx.TransportError) or isinstance(exc, httpx.TimeoutException)
            error = {
                "type": "error",
                "code": "upstream_timeout" if timeout else "upstream_reset",
                "message": "The upstream stopped sending." if timeout else "The upstream connection broke.",
                "param": None,
            }
            yield encode_event("error", _encoder.encode(error))
        finally:
            await response.aclose()

    @staticmethod
    def _terminal(name: str | None, data: str) -> r.ResponseResource | None:
        if name not in _TERMINAL and not any(t in data for t in _TERMINAL):
            return None
        try:
            event = _any.decode(data)
            if event.get("type", name) in _TERMINAL and isinstance(event.get("response"), dict):
                return msgspec.convert(event["response"], r.ResponseResource)
        except (msgspec.DecodeError, AttributeError):
            return None
        return None

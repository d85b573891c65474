"""WebSocket mode on ``/v1/responses`` (Open Responses 2026-04-24).

The client sends ``{"type": "response.create", ...body}`` frames; each turn's events go back as
JSON text frames (never ``[DONE]``), one response in flight at a time. ``store: false``
responses live only in this connection's memory (``ConnectionCache``: bounded in count and bytes,
least recently used out first); stored ids may be hydrated from the store. A continuation from an
unknown or evicted id fails with ``previous_response_not_found``, and a failed continuation evicts
the id it continued from. Connections end after 60 minutes.

Each frame gets the checks every HTTP body gets (``shim.http.guards``): at most
``max_body_bytes``, valid UTF-8, JSON no deeper than ``max_json_depth``, before it is decoded.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Coroutine, Iterator, MutableMapping
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from shim.errors import InvalidRequest, PayloadTooLarge, RateLimited, ShimError
from shim.http.observability import observe_turn
from shim.http.ratelimit import RateLimiter
from shim.http.state import app_state
from shim.limits import Limits, check_json_bytes
from shim.store.repository import StoredResponse
from shim.telemetry import current_record
from shim.turns import responses_over_chat
from shim.turns.context import TurnContext
from shim.upstream.routing import bearer
from shim.wire import responses as r
from shim.wire.responses_decode import decode_create_request

__all__ = ["CONNECTION_LIMIT_SECONDS", "ConnectionCache", "responses_websocket"]

CONNECTION_LIMIT_SECONDS = 60 * 60
_DISALLOWED = ("stream", "stream_options", "background")
_encoder = msgspec.json.Encoder()
_any = msgspec.json.Decoder()
_size_of = msgspec.msgpack.Encoder()


class ConnectionCache(MutableMapping[str, StoredResponse]):
    """A connection's responses, least recently used evicted first beyond ``entries`` or
    ``max_bytes`` (each response counted at its encoded size). The newest one always stays, so a
    client can continue the turn it just received whatever its size."""

    def __init__(self, entries: int, max_bytes: int) -> None:
        self.entries = max(1, entries)
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[StoredResponse, int]] = OrderedDict()

    def __getitem__(self, key: str) -> StoredResponse:
        stored, _ = self._items[key]
        self._items.move_to_end(key)  # a lookup is a use
        return stored

    def __setitem__(self, key: str, stored: StoredResponse) -> None:
        self.pop(key, None)
        size = len(_size_of.encode(stored))
        self._items[key] = (stored, size)
        self.bytes += size
        while len(self._items) > 1 and (len(self._items) > self.entries or self.bytes > self.max_bytes):
            _, (_, dropped) = self._items.popitem(last=False)
            self.bytes -= dropped

    def __delitem__(self, key: str) -> None:
        _, size = self._items.pop(key)
        self.bytes -= size

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def _error_frame(exc: ShimError) -> bytes:
    return _encoder.encode(
        {
            "type": "error",
            "status": exc.http_status,
            "error": {"type": exc.type, "code": exc.code, "message": exc.message, "param": exc.param},
        }
    )


def _check_continuation(body: r.CreateResponseBody, previous: StoredResponse | None) -> None:
    """A ``function_call_output`` must answer a call of the response it continues."""
    if previous is None or not isinstance(body.input, list):
        return
    calls = {i.call_id for i in previous.resource.output if isinstance(i, r.FunctionCall)}
    for n, item in enumerate(body.input):
        if isinstance(item, r.FunctionCallOutputItemParam) and item.call_id not in calls:
            raise InvalidRequest(
                f"No function call with call_id {item.call_id!r} in response {previous.resource.id!r}.",
                param=f"input[{n}].call_id",
                code="invalid_function_call_output",
            )


def _decode_frame(
    text: str | bytes, limits: Limits, max_bytes: int
) -> tuple[r.CreateResponseBody, tuple[str, ...]]:
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The message is larger than {max_bytes} bytes.")
    check_json_bytes(raw, limits)  # before any decoder recurses into it
    try:
        data = _any.decode(raw)
    except msgspec.DecodeError:
        raise InvalidRequest("The message is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict) or data.get("type") != "response.create":
        raise InvalidRequest("Expected a `response.create` message.", param="type", code="invalid_type")
    if data.get("stream") is True:
        # Codex sends `stream: true` in its frames (the spec says not to); a WebSocket turn always
        # streams, so it changes nothing and is dropped rather than failing every Codex turn.
        del data["stream"]
    for name in _DISALLOWED:
        if name in data:
            raise InvalidRequest(
                f"`{name}` is not allowed in WebSocket mode.", param=name, code="invalid_parameter"
            )
    del data["type"]
    return decode_create_request(_encoder.encode(data))  # unknown fields: reported by the turn


async def _turn(
    socket: WebSocket[Any, Any, Any],
    ctx: TurnContext,
    text: str | bytes,
    client_key: str | None,
    local: ConnectionCache,
    max_bytes: int,
) -> int:
    """One turn; its status for the access log (200, or the error frame's)."""
    previous_id: str | None = None
    try:
        body, unknown = _decode_frame(text, ctx.limits, max_bytes)
        previous_id = body.previous_response_id
        resolved = ctx.router.resolve(body.model, client_key)
        turn = await responses_over_chat.prepare(
            ctx, body, resolved, client_key, local=local, stream=True, unknown=unknown
        )
        _check_continuation(body, turn.previous)
        upstream = await responses_over_chat.open_stream(ctx, turn)
        failed = False
        skipped = 0
        async for event in responses_over_chat.events(ctx, turn, upstream, local):
            # A turn ends at its first terminal frame: send ``response.failed`` alone, since
            # clients move on to the next turn at an ``error`` frame. Sequence numbers stay
            # contiguous over what is actually sent.
            if event is None:
                continue
            if isinstance(event, r.ErrorStreamingEvent):
                skipped += 1
                continue
            event.sequence_number -= skipped
            failed = failed or isinstance(event, r.ResponseFailedStreamingEvent)
            await socket.send_data(_encoder.encode(event).decode(), mode="text")
        if failed and previous_id:
            local.pop(previous_id, None)
    except ShimError as exc:
        if previous_id:
            local.pop(previous_id, None)
        await socket.send_data(_error_frame(exc).decode(), mode="text")
        return exc.http_status
    return 200


async def _limited(
    limiter: RateLimiter | None,
    socket: WebSocket[Any, Any, Any],
    client_key: str | None,
    message: str | bytes,
    turn: Coroutine[Any, Any, int],
) -> int:
    """``turn`` under the key's rate limits (http/ratelimit.py): refused with a 429 error frame
    (the turn never runs), else charged and settled when it ends."""
    if limiter is None:
        return await turn
    raw = message.encode() if isinstance(message, str) else message
    try:
        admission = await limiter.admit(client_key, raw)
    except RateLimited as exc:
        turn.close()
        await socket.send_data(_error_frame(exc).decode(), mode="text")
        return exc.http_status
    try:
        return await turn
    finally:
        if admission is not None:
            await asyncio.shield(limiter.settle(admission, current_record().get()))


@websocket("/v1/responses")
async def responses_websocket(socket: WebSocket[Any, Any, Any]) -> None:
    state = app_state(socket.app)
    ctx = state.turns
    client_key = bearer(socket.headers.get("authorization"))
    max_bytes = state.settings.server.max_body_bytes
    await socket.accept()
    local = ConnectionCache(ctx.limits.websocket_cache_entries, ctx.limits.websocket_cache_bytes)
    deadline = time.monotonic() + CONNECTION_LIMIT_SECONDS
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    event = await socket.receive()
            except TimeoutError:
                limit = InvalidRequest(
                    "The WebSocket connection reached its 60-minute limit.",
                    code="websocket_connection_limit_reached",
                )
                await socket.send_data(_error_frame(limit).decode(), mode="text")
                await socket.close(code=1000)
                return
            if event["type"] == "websocket.disconnect":
                return
            # JSON may come in a text or a binary frame.
            text, data = event.get("text"), event.get("bytes")
            message = text if isinstance(text, str) else data if isinstance(data, bytes) else b""
            async with observe_turn(state.metrics, "/v1/responses", socket.scope["headers"]) as outcome:
                outcome.status = await _limited(
                    state.limiter,
                    socket,
                    client_key,
                    message,
                    _turn(socket, ctx, message, client_key, local, max_bytes),
                )
    except WebSocketDisconnect:
        return

"""The body guard: raw request bytes are checked before any handler decodes them.

An ASGI wrapper around the whole app, so every HTTP endpoint (Responses, Chat, retrieval) gets
the same treatment: the body is read up to ``max_body_bytes`` (413 beyond), must be valid UTF-8
and nest JSON no deeper than the limit (``shim.limits.check_json_bytes``); then it is replayed to
the app unchanged. The answer to a bad body is the usual error envelope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from shim.errors import PayloadTooLarge, ShimError
from shim.limits import Limits, check_json_bytes

__all__ = ["ASGIApp", "BodyGuard", "read_body", "replaying", "send_error"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_encoder = msgspec.json.Encoder()
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


async def send_error(send: Send, error: ShimError) -> None:
    body = _encoder.encode(error.envelope())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def replaying(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that gives ``first`` (a body already read) once, then the real messages:
    after the body, disconnect notices pass through. The closure lets go of ``first`` once given,
    so a long stream does not keep its request body alive here as well as wherever it went."""
    pending = [first]
    del first

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


async def read_body(receive: Receive, limits: Limits, max_body_bytes: int) -> bytes | ShimError | None:
    """The whole body, read up to ``max_body_bytes`` and checked (UTF-8, JSON depth); else the
    error to answer, or ``None`` when the client left before it finished sending (nobody to
    answer)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body_bytes:
            return PayloadTooLarge(f"The request body is larger than {max_body_bytes} bytes.")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    body = b"".join(chunks)  # (one chunk: that very object)
    if body:
        try:
            check_json_bytes(body, limits)
        except ShimError as exc:
            return exc
    return body


class BodyGuard:
    def __init__(self, app: ASGIApp, limits: Limits, max_body_bytes: int) -> None:
        self.app = app
        self.limits = limits
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, self.limits, self.max_body_bytes)
        if body is None:
            return
        if isinstance(body, ShimError):
            await send_error(send, body)
            return
        # The frame stays suspended for the whole answer: keep no reference to the request's bytes.
        replay = replaying({"type": "http.request", "body": body, "more_body": False}, receive)
        del body
        await self.app(scope, replay, send)

"""The client-key gate: an ASGI wrapper in front of every HTTP and WebSocket endpoint.

A bearer token that is not printable ASCII is a 401 everywhere it counts (it can equal no key,
here or upstream). With ``api_keys`` configured, every path needs one of them except the
operations endpoints below, which hold no caller's data and are probed by load balancers and
scrapers that carry no key (docs/security.md). Checking here rather than per handler means an
endpoint added later cannot forget it, and an unauthenticated body is refused before it is read.

A refused WebSocket handshake is answered with the 401 envelope where the server offers the
ASGI denial-response extension (uvicorn does), else closed with 1008 (policy violation).
"""

from __future__ import annotations

import msgspec

from shim.errors import AuthenticationError
from shim.http.guards import ASGIApp, Receive, Scope, Send, send_error
from shim.upstream.routing import Router, bearer

__all__ = ["OPEN_PATHS", "ClientAuth", "check_client"]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_OPEN_PREFIX = "/schema"  # the OpenAPI document and its viewers: the same for every deployment
# The inspector checks the same keys itself (http/inspector.py): a browser holds the key in a
# cookie after its login form, not in an Authorization header, so this gate cannot see it.
_SELF_GUARDED_PREFIX = "/inspector"
_encoder = msgspec.json.Encoder()


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


def check_client(router: Router, scope: Scope) -> None:
    """An ``AuthenticationError`` unless the request's bearer token lets it in (any token, or
    none, when no ``api_keys`` are configured; a token that is not printable ASCII never)."""
    router.check_client_if_required(bearer(_authorization(scope)))


class ClientAuth:
    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        path = str(scope.get("path", ""))
        if (
            kind not in ("http", "websocket")
            or path in OPEN_PATHS
            or path.startswith(_OPEN_PREFIX)
            or (
                kind == "http"
                and (path == _SELF_GUARDED_PREFIX or path.startswith(_SELF_GUARDED_PREFIX + "/"))
            )
        ):
            await self.app(scope, receive, send)
            return
        try:
            check_client(self.router, scope)
        except AuthenticationError as exc:
            if kind == "http":
                await send_error(send, exc)
            else:
                await _refuse_handshake(scope, receive, send, exc)
            return
        await self.app(scope, receive, send)


async def _refuse_handshake(scope: Scope, receive: Receive, send: Send, error: AuthenticationError) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        body = _encoder.encode(error.envelope())
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": error.http_status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    reason = error.message.encode()[:123].decode(errors="ignore")  # a close reason holds 123 bytes
    await send({"type": "websocket.close", "code": 1008, "reason": reason})

"""Which upstream serves a model, and with which credentials.

Routes are tried in order; the first whose glob matches the model wins. The ``model:provider``
form (``moonshotai/Kimi-K2-Thinking:nebius``) picks the route named by its provider and strips
the suffix before the request goes upstream.

Credentials (docs/security.md): with ``api_keys`` set, every client must present one of them and
it is never forwarded anywhere: a route gets its own key or none. Without ``api_keys`` the
client's key passes through to routes that have no key of their own (the client brings its
upstream key), and routes with their own key refuse clients.
"""

from __future__ import annotations

import fnmatch
import hmac
import re

import msgspec

from shim.dialects.model import Dialect
from shim.dialects.registry import get_dialect
from shim.errors import AuthenticationError, InvalidRequest, ModelNotFound
from shim.settings import Route, check_fallback_keys

__all__ = ["Resolved", "Router", "bearer"]

# RFC 9110 token68 and what real keys hold: visible ASCII, no spaces. Anything else (a key
# pasted with a smart quote, raw bytes) can match no key here nor upstream.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_GLOB = re.compile(r"[*?\[]")


class Resolved(msgspec.Struct, frozen=True):
    route: Route
    dialect: Dialect
    upstream_model: str
    upstream_key: str | None
    # The route's other upstreams, in order, resolved alike (shim/upstream/failover.py).
    fallbacks: tuple[Resolved, ...] = ()


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header (decoded as latin-1, as ASGI servers do);
    ``None`` without one; a 401 for a token no key can equal."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    if not _TOKEN.fullmatch(token):
        raise AuthenticationError("Invalid API key: it must be printable ASCII without spaces.")
    return token


class Router:
    def __init__(self, routes: tuple[Route, ...], api_keys: tuple[str, ...] = ()) -> None:
        self.routes = routes
        self.api_keys = api_keys
        # Each route's fallback upstreams as whole routes, made once (by identity: routes hold dicts).
        self._fallbacks = {id(route): route.candidates()[1:] for route in routes if route.fallbacks}
        check_fallback_keys(routes, api_keys)  # (load_settings checked; settings made in code too)
        for route in routes:  # fail at start-up, not on the first request
            for candidate in route.candidates():
                get_dialect(candidate.dialect)

    def resolve(self, model: str | None, client_key: str | None) -> Resolved:
        if not model:
            raise InvalidRequest(
                "The request needs a `model`.", param="model", code="missing_required_parameter"
            )
        route, upstream_model = self._match(model)
        resolved = self.for_route(route, client_key, route.model or upstream_model)
        if route.fallbacks:
            fallbacks = tuple(
                self.for_route(candidate, client_key, candidate.model or upstream_model)
                for candidate in self._fallbacks.get(id(route)) or route.candidates()[1:]
            )
            resolved = msgspec.structs.replace(resolved, fallbacks=fallbacks)
        return resolved

    def for_route(self, route: Route, client_key: str | None, upstream_model: str = "") -> Resolved:
        """``route`` with its dialect and credentials: with shim keys configured the client must
        hold one and the route gets its own key or none; without them the client's key passes
        through, and a route with its own key refuses clients."""
        if self.api_keys or route.has_own_key:
            self._check_client(client_key)
            key = route.own_key()  # a shim key is never forwarded
        else:
            key = client_key
        return Resolved(route, get_dialect(route.dialect), upstream_model, key)

    def route_of(self, model: str) -> Route | None:
        """The route a request for ``model`` would take, or None (``GET /v1/models`` lists only
        the ids that route back to the route that listed them)."""
        try:
            return self._match(model)[0]
        except ModelNotFound:
            return None

    def listing(self, client_key: str | None) -> list[tuple[Route, Resolved | None]]:
        """For ``GET /models``: each route the client may use, with the credentials to ask it,
        or ``None`` where asking could send the client's key to an upstream its own requests
        might never reach (several pass-through routes): such routes are listed from the
        configuration instead (``configured_models``)."""
        if self.api_keys:
            self._check_client(client_key)
            return [(route, self.for_route(route, client_key, route.model or "")) for route in self.routes]
        usable = [route for route in self.routes if not route.has_own_key]
        if client_key is not None and len(usable) > 1:
            return [(route, None) for route in usable]
        return [(route, self.for_route(route, client_key, route.model or "")) for route in usable]

    @staticmethod
    def configured_models(route: Route) -> list[str]:
        """Model names a route is sure to serve, from its configuration alone."""
        if route.provider is not None:
            return [f"{route.model}:{route.provider}"] if route.model else []
        return [] if _GLOB.search(route.match) else [route.match]

    def check_client_if_required(self, client_key: str | None) -> None:
        """For endpoints without a model (retrieval): shim keys are checked when configured."""
        if self.api_keys:
            self._check_client(client_key)

    def _check_client(self, client_key: str | None) -> None:
        if not self.api_keys:
            raise AuthenticationError(
                "This route uses the shim's own upstream key; set SHIM_API_KEYS to let clients in."
            )
        # Bytes: compare_digest refuses str holding non-ASCII.
        given = (client_key or "").encode()
        if client_key is None or not any(hmac.compare_digest(given, k.encode()) for k in self.api_keys):
            raise AuthenticationError("Invalid or missing API key for this shim.")

    def _match(self, model: str) -> tuple[Route, str]:
        base, sep, provider = model.rpartition(":")
        if sep and base:
            for route in self.routes:
                if route.provider == provider:
                    return route, base
        for route in self.routes:
            if route.provider is None and fnmatch.fnmatchcase(model, route.match):
                return route, model
        raise ModelNotFound(f"The model {model!r} does not exist or no route serves it.", param="model")

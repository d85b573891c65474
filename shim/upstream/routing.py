"""Which upstream serves a model, and with which credentials.

Routes are tried in order; the first whose glob matches the model wins. The ``model:provider``
form (``moonshotai/Kimi-K2-Thinking:nebius``) picks the route named by its provider and strips
the suffix before the request goes upstream.
"""

from __future__ import annotations

import fnmatch
import hmac

import msgspec

from shim.dialects.model import Dialect
from shim.dialects.registry import get_dialect
from shim.errors import AuthenticationError, InvalidRequest, ModelNotFound
from shim.settings import Route

__all__ = ["Resolved", "Router", "bearer"]


class Resolved(msgspec.Struct, frozen=True):
    route: Route
    dialect: Dialect
    upstream_model: str
    upstream_key: str | None


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class Router:
    def __init__(self, routes: tuple[Route, ...], api_keys: tuple[str, ...] = ()) -> None:
        self.routes = routes
        self.api_keys = api_keys
        for route in routes:  # fail at start-up, not on the first request
            get_dialect(route.dialect)

    def resolve(self, model: str | None, client_key: str | None) -> Resolved:
        if not model:
            raise InvalidRequest(
                "The request needs a `model`.", param="model", code="missing_required_parameter"
            )
        route, upstream_model = self._match(model)
        return self.for_route(route, client_key, route.model or upstream_model)

    def for_route(self, route: Route, client_key: str | None, upstream_model: str = "") -> Resolved:
        """``route`` with its dialect and credentials: its own key (the client must hold a shim
        key), else the client's. Also for requests that name no model (``GET /models``)."""
        if route.has_own_key:
            self._check_client(client_key)
            key = route.own_key()
        else:
            key = client_key
        return Resolved(route, get_dialect(route.dialect), upstream_model, key)

    def check_client_if_required(self, client_key: str | None) -> None:
        """For endpoints without a model (retrieval): shim keys are checked when configured."""
        if self.api_keys:
            self._check_client(client_key)

    def _check_client(self, client_key: str | None) -> None:
        if not self.api_keys:
            raise AuthenticationError(
                "This route uses the shim's own upstream key; set SHIM_API_KEYS to let clients in."
            )
        if client_key is None or not any(hmac.compare_digest(client_key, k) for k in self.api_keys):
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

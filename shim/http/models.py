"""``GET /v1/models`` (every route's models that route back to it, suffixed with the route's
provider), ``GET /v1/models/{id}`` and ``/healthz``."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.params import Parameter

from shim.errors import ModelNotFound, ShimError
from shim.http.openapi import Model, ModelList, documented
from shim.http.state import app_state
from shim.settings import Route
from shim.upstream.routing import Router, bearer

__all__ = ["healthz", "list_models", "retrieve_model"]

log = logging.getLogger("shim")
_encoder = msgspec.json.Encoder()


async def _models(request: Request[Any, Any, Any]) -> dict[str, dict[str, Any]]:
    """Id -> model, for the ids a request would route back to the route that listed them (a route
    ``match = "m-*"`` whose upstream lists ``m`` does not serve ``m``), plus each route's literal
    ``match`` (a name the route serves whatever its upstream calls the model)."""
    ctx = app_state(request.app).turns
    router = ctx.router
    client_key = bearer(request.headers.get("authorization"))
    seen: dict[str, dict[str, Any]] = {}
    for route, resolved in router.listing(client_key):  # which key may go where: routing.py
        if resolved is None:  # not asked: its names from configuration alone
            _configured(router, route, seen)
            continue
        try:
            data = msgspec.json.decode(await ctx.upstream.get_json(resolved, "/models"))
        except ShimError as exc:
            log.info("models: %s: %s", route.upstream, exc.message)
            continue
        for model in data.get("data", []) if isinstance(data, dict) else []:
            if isinstance(model, dict) and isinstance(model.get("id"), str):
                model_id = model["id"] + (f":{route.provider}" if route.provider else "")
                if router.route_of(model_id) is route:
                    seen.setdefault(model_id, {**model, "id": model_id, "object": "model"})
        if route.provider is None:  # its literal match, whatever the upstream calls the model
            _configured(router, route, seen)
    return seen


def _configured(router: Router, route: Route, seen: dict[str, dict[str, Any]]) -> None:
    """The names a route serves by its configuration (``Router.configured_models``) that route
    back to it."""
    for name in router.configured_models(route):
        if router.route_of(name) is route:
            seen.setdefault(name, {"id": name, "object": "model", "created": 0, "owned_by": "shim"})


@get(
    "/v1/models",
    summary="List models",
    tags=["models"],
    operation_class=documented(response=ModelList, errors=("401",)),
)
async def list_models(request: Request[Any, Any, Any]) -> Response[bytes]:
    seen = await _models(request)
    return Response(
        content=_encoder.encode({"object": "list", "data": list(seen.values())}),
        media_type="application/json",
    )


@get(
    "/v1/models/{model_id:path}",
    summary="Retrieve a model",
    tags=["models"],
    operation_class=documented(response=Model, errors=("401", "404")),
)
async def retrieve_model(
    request: Request[Any, Any, Any],
    model_id: Annotated[str, Parameter(description="A model id as `GET /v1/models` lists it.")],
) -> Response[bytes]:
    model = (await _models(request)).get(model_id.lstrip("/"))
    if model is None:
        raise ModelNotFound(
            f"The model {model_id.lstrip('/')!r} does not exist or no route serves it.", param="model"
        )
    return Response(content=_encoder.encode(model), media_type="application/json")


@get("/healthz", summary="Liveness", tags=["operations"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}

"""``GET /v1/models`` (every route's models, suffixed with the route's provider) and ``/healthz``."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response, get

from shim.errors import ShimError
from shim.http.openapi import ModelList, documented
from shim.http.state import app_state
from shim.upstream.routing import bearer

__all__ = ["healthz", "list_models"]

log = logging.getLogger("shim")
_encoder = msgspec.json.Encoder()


@get(
    "/v1/models",
    summary="List models",
    tags=["models"],
    operation_class=documented(response=ModelList, errors=("401",)),
)
async def list_models(request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx = app_state(request.app).turns
    client_key = bearer(request.headers.get("authorization"))
    seen: dict[str, dict[str, Any]] = {}
    for route in ctx.router.routes:
        try:
            resolved = ctx.router.for_route(route, client_key, route.model or "")
            data = msgspec.json.decode(await ctx.upstream.get_json(resolved, "/models"))
        except ShimError as exc:
            log.info("models: %s: %s", route.upstream, exc.message)
            continue
        for model in data.get("data", []) if isinstance(data, dict) else []:
            if isinstance(model, dict) and isinstance(model.get("id"), str):
                model_id = model["id"] + (f":{route.provider}" if route.provider else "")
                seen.setdefault(model_id, {**model, "id": model_id, "object": "model"})
    return Response(
        content=_encoder.encode({"object": "list", "data": list(seen.values())}),
        media_type="application/json",
    )


@get("/healthz", summary="Liveness", tags=["operations"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}

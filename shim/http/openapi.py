"""The OpenAPI document: Litestar's, served at /schema, with the real request and response schemas.

Handlers read their bodies themselves (so every validation error uses the OpenAI envelope), which
leaves Litestar nothing to infer a request schema from. Each handler therefore declares its wire
types with :func:`documented`; the schemas come from the same msgspec structs that decode and
encode the traffic, so the document cannot drift from what the server really accepts and sends.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import (
    Discriminator,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

from shim import __version__

__all__ = ["ErrorEnvelope", "Model", "ModelList", "documented", "openapi_config", "with_wire_schemas"]


class ErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(msgspec.Struct):
    """Every error the shim returns, whatever the endpoint: OpenAI's envelope."""

    error: ErrorBody


class Model(msgspec.Struct):
    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None


class ModelList(msgspec.Struct):
    """``GET /v1/models``: the upstreams' models, with a route's ``:provider`` suffix where it has one."""

    data: list[Model]
    object: str = "list"


# Every type named by a `documented` call; their schemas become the document's components.
_TYPES: dict[str, type] = {"ErrorEnvelope": ErrorEnvelope}
_REF = "#/components/schemas/{name}"
_ERROR_STATUSES = {
    "400": "Invalid request (the error names the offending `param`)",
    "401": "Missing or unknown client key",
    "404": "Unknown model, route or id",
    "429": "Upstream rate limit",
    "502": "Upstream failed before the response started",
    "504": "Upstream timed out before the response started",
}

# JSON Schema keywords whose OpenAPI (Litestar) field name differs from the snake_case rule.
_RENAMED = {"not": "schema_not", "if": "schema_if", "else": "schema_else"}
_SCHEMA_FIELDS = {f.name for f in fields(Schema)}


def _camel_to_snake(key: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in key)


def to_openapi(node: Any) -> Any:
    """A msgspec JSON-schema dict as Litestar's OpenAPI objects (recursively)."""
    if isinstance(node, list):
        return [to_openapi(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return Reference(ref=node["$ref"])
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        name = _RENAMED.get(key) or _camel_to_snake(key)
        if name not in _SCHEMA_FIELDS:
            continue  # e.g. "$defs": components are emitted separately
        if name == "type":
            kwargs[name] = [OpenAPIType(v) for v in value] if isinstance(value, list) else OpenAPIType(value)
        elif name == "properties":
            kwargs[name] = {prop: to_openapi(schema) for prop, schema in value.items()}
        elif name == "discriminator":
            kwargs[name] = Discriminator(property_name=value["propertyName"], mapping=value.get("mapping"))
        elif name in {"enum", "const", "default", "examples", "example", "required"}:
            kwargs[name] = value
        else:
            kwargs[name] = to_openapi(value)
    return Schema(**kwargs)


def _ref(tp: type) -> Reference:
    _TYPES[tp.__name__] = tp
    return Reference(ref=_REF.format(name=tp.__name__))


def _json(schema: Reference | Schema) -> dict[str, OpenAPIMediaType]:
    return {"application/json": OpenAPIMediaType(schema=schema)}


def documented(
    *,
    request: type | None = None,
    response: type | None = None,
    stream: str | None = None,
    errors: tuple[str, ...] = ("400", "401", "404", "429", "502", "504"),
) -> type[Operation]:
    """An ``operation_class`` for a handler: its request body, 200 answer and error answers.

    ``stream`` describes the ``text/event-stream`` variant of the 200 answer, when there is one.
    """
    request_ref = _ref(request) if request is not None else None
    response_ref = _ref(response) if response is not None else None
    error_ref = _ref(ErrorEnvelope)

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            if request_ref is not None:
                self.request_body = RequestBody(content=_json(request_ref), required=True)
            answers = dict(self.responses or {})
            if response_ref is not None:
                content = _json(response_ref)
                if stream:
                    content["text/event-stream"] = OpenAPIMediaType(
                        schema=Schema(type=OpenAPIType.STRING, description=stream)
                    )
                answers["200"] = OpenAPIResponse(description="Success", content=content)
            for status in errors:
                answers[status] = OpenAPIResponse(
                    description=_ERROR_STATUSES[status], content=_json(error_ref)
                )
            self.responses = answers

    return DocumentedOperation


def openapi_config() -> OpenAPIConfig:
    from shim.http.schema_page import SchemaPage

    # /schema: a page that works offline (no CDN scripts); /schema/openapi.json: the document.
    return OpenAPIConfig(
        title="shim",
        version=__version__,
        path="/schema",
        render_plugins=[SchemaPage(), _Document()],
    )


def with_wire_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Litestar's rendered document with the wire types' schemas added to its components (Litestar
    replaces the config's own with the ones it generated, none of ours). The document is built on
    the first request for it and kept, so this runs once: nothing of it is built at start-up
    (~1.5 MiB a worker, bench/README.md issue 18)."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    if not _TYPES.keys() <= schemas.keys():
        _, wire = msgspec.json.schema_components(list(_TYPES.values()), ref_template=_REF)
        schemas.update({name: to_openapi(schema).to_schema() for name, schema in wire.items()})
    return document


class _Document(JsonRenderPlugin):
    """``/schema/openapi.json``: the document, with the wire schemas."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, with_wire_schemas(openapi_schema))

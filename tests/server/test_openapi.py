"""The OpenAPI document describes the endpoints truthfully: real request and response schemas.

The schemas are generated from the wire structs that decode and encode the traffic; these tests
check that every reference resolves, that each endpoint names its body and answers, and that the
documented request covers every property of the Open Responses spec's ``CreateResponseBody``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "openresponses-openapi.json"
# Fields we read beyond the spec's request, each an OpenAI-compatible extension: honoured,
# translated, reported or refused by name (shim/translate/request_fields.py); `conversation` is
# also on the resource of a turn on a conversation.
EXTENSIONS = {
    "conversation",
    "prompt",
    "seed",
    "stop",
    "user",
    "context_management",
    "prompt_cache_retention",
    "prompt_cache_options",
    "access_programs",
    "background_options",
    "image",
    "moderation",
}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/schema/openapi.json")
    assert answer.status_code == 200
    doc: dict[str, Any] = answer.json()
    return doc


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _schema(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix), ref
    schema: dict[str, Any] = doc["components"]["schemas"][ref.removeprefix(prefix)]
    return schema


async def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert len(refs) > 20
    for ref in refs:
        assert _schema(document, ref)


async def test_create_response_is_described(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/responses"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/CreateResponseBody")
    ok = operation["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/ResponseResource")
    assert ok["text/event-stream"]["schema"]["type"] == "string"
    for status in ("400", "401", "404", "429", "502", "504"):
        error = operation["responses"][status]["content"]["application/json"]["schema"]
        assert error["$ref"].endswith("/ErrorEnvelope")
    envelope = _schema(document, "#/components/schemas/ErrorBody")
    assert set(envelope["properties"]) == {"message", "type", "param", "code"}


async def test_models_answer_is_described(document: dict[str, Any]) -> None:
    ok = document["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]
    models = _schema(document, ok["schema"]["$ref"])
    assert set(models["properties"]) == {"object", "data"}


async def test_request_covers_the_spec(document: dict[str, Any]) -> None:
    if not SPEC.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Open Responses spec must be beside the checkout in CI ({SPEC})")
        pytest.skip(f"the Open Responses spec is not beside the checkout ({SPEC})")
    spec = json.loads(SPEC.read_text())["components"]["schemas"]
    for name in ("CreateResponseBody", "ResponseResource"):
        ours = set(_schema(document, f"#/components/schemas/{name}")["properties"])
        theirs = set(spec[name]["properties"])
        assert theirs <= ours, f"{name} lacks {sorted(theirs - ours)}"
        assert ours - theirs <= EXTENSIONS, (
            f"{name} documents unknown fields {sorted(ours - theirs - EXTENSIONS)}"
        )


async def test_schema_page_works_offline(client: httpx.AsyncClient) -> None:
    """``/schema`` loads nothing from elsewhere (Litestar's Redoc page was blank offline) and
    names the document and every operation."""
    answer = await client.get("/schema")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "/schema/openapi.json" in page
    for operation in (
        "<code>POST</code></td><td><code>/v1/responses</code>",
        "<code>/v1/models/{model_id}</code>",
    ):
        assert operation in page, operation


async def test_document_after_the_page_has_the_wire_schemas(client: httpx.AsyncClient) -> None:
    """The document is built on its first request and kept (nothing of it at start-up): the
    page first, then the document twice, and the wire schemas are there each time, the same."""
    assert (await client.get("/schema")).status_code == 200
    first, again = (await client.get("/schema/openapi.json")), (await client.get("/schema/openapi.json"))
    assert first.content == again.content
    schemas = first.json()["components"]["schemas"]
    for name in ("CreateResponseBody", "ResponseResource", "ErrorEnvelope", "ErrorBody", "ModelList"):
        assert name in schemas, name

"""``GET /schema``: a self-contained page for the OpenAPI document.

Litestar's UI pages (Redoc, Swagger, Scalar…) load their scripts, fonts and icon from CDNs, so
on a machine without internet access ``/schema`` was a blank page. This one has no scripts and
no external links: every operation with its summary, and a link to the document itself at
``/schema/openapi.json`` (what tools and code generators want).
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

__all__ = ["SchemaPage"]

_METHODS = ("get", "post", "put", "patch", "delete")
_STYLE = (
    "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}"
    "td,th{text-align:left;padding:.2em .8em .2em 0;vertical-align:top}code{font-size:1em}</style>"
)


class SchemaPage(OpenAPIRenderPlugin):
    """The operations as a plain HTML table; the document is linked, not fetched by a script."""

    def __init__(self, *, path: str = "/") -> None:
        super().__init__(path=path, favicon="", style=_STYLE)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        title = escape(f"{info.get('title', '')} {info.get('version', '')}".strip())
        rows: list[str] = []
        for path, item in sorted(openapi_schema.get("paths", {}).items()):
            for method in _METHODS:
                operation = item.get(method)
                if isinstance(operation, dict):
                    summary = operation.get("summary") or operation.get("description") or ""
                    rows.append(
                        f"<tr><td><code>{method.upper()}</code></td><td><code>{escape(path)}</code></td>"
                        f"<td>{escape(str(summary).splitlines()[0] if summary else '')}</td></tr>"
                    )
        document = escape(request.url.path.rstrip("/") + "/openapi.json")
        page = (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{self.style}"
            f"</head><body><h1>{title}</h1><p>The OpenAPI document (every request and response "
            f"schema): <a href='{document}'><code>{document}</code></a></p>"
            f"<table><tr><th>method</th><th>path</th><th>summary</th></tr>{''.join(rows)}</table>"
            "</body></html>"
        )
        return page.encode()

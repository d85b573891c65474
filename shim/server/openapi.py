"""The OpenAPI document: Litestar's, served at /schema, titled for the shim."""

from __future__ import annotations

from litestar.openapi import OpenAPIConfig

from shim import __version__

__all__ = ["openapi_config"]


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(title="shim", version=__version__, path="/schema")

"""A tool's structured output checked against its ``outputSchema`` with a validator made once per
schema.

The SDK's ``ClientSession.call_tool`` checks every result with ``jsonschema.validate``, which
checks the schema against its metaschema first, every time: ~0.5 ms of CPU per call, about as
much as the rest of the call's client-side work in Python (bench/README.md, issue 18).
``problem`` says what ``ClientSession._validate_tool_result`` says — the same errors and
messages (``tests/hosted/test_tool_output.py`` compares both) — with the validator kept per
schema; the shim's own client (``streamable.py``) and ``CheckedSession`` (the SDK's session, for
the SSE fallback, made in ``checked_session``) both use it.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import msgspec
from jsonschema import SchemaError  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from jsonschema.validators import validator_for  # type: ignore[import-untyped]
from referencing import Registry
from referencing.exceptions import Unresolvable

__all__ = ["checked_class", "checked_session", "problem"]

_log = logging.getLogger("client")  # the SDK's logger for the same warning


@functools.lru_cache(maxsize=256)
def _validator(schema_text: bytes) -> Any:
    """The schema's validator, its schema checked (``SchemaError``: not cached, raised again).
    Keyed by the schema's JSON in its own key order: the errors' text shows the schema as sent."""
    schema = msgspec.json.decode(schema_text)
    cls = validator_for(schema)
    cls.check_schema(schema)
    # An explicit empty registry, as the SDK: `$ref`s resolve within the document and the metaschemas.
    return cls(schema, registry=Registry())


def problem(name: str, listed: bool, schema: Any, structured: Any) -> str | None:
    """Why the structured output of tool ``name`` (``listed``: the server listed it, with
    ``schema``) is refused, in the SDK's words; ``None`` when it is fine."""
    if not listed:
        _log.warning(f"Tool {name} not listed by server, cannot validate any structured content")
        return None
    if schema is None:
        return None
    if structured is None:
        return f"Tool {name} has an output schema but did not return structured content"
    try:
        error = best_match(_validator(msgspec.json.encode(schema)).iter_errors(structured))
    except (SchemaError, Unresolvable) as e:
        return f"Invalid schema for tool {name}: {e}"
    if error is not None:
        return f"Invalid structured content returned by tool {name}: {error}"
    return None


def checked_session(read: Any, write: Any) -> Any:
    """The SDK's ``ClientSession`` checking outputs with ``problem`` (the SDK imported here: the
    SSE fallback is its only user)."""
    return checked_class()(read, write)


@functools.cache
def checked_class() -> type[Any]:
    from mcp import ClientSession
    from mcp.types import CallToolResult

    class CheckedSession(ClientSession):
        async def _validate_tool_result(self, name: str, result: CallToolResult) -> None:
            if name not in self._tool_output_schemas:
                await self.list_tools()  # refresh the output schemas, as the SDK does
            listed = name in self._tool_output_schemas
            found = problem(name, listed, self._tool_output_schemas.get(name), result.structuredContent)
            if found is not None:
                raise RuntimeError(found)

    return CheckedSession

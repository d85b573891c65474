"""The independent oracles: pydantic models generated from the spec by a third party, and
openai-python's own types.

``validate_event`` finds the spec's event model by its ``type`` and validates the bytes we
emitted; ``validate_resource`` does the same for a whole response. What the spec does not have
(client tool types beyond ``function``: their items, events and echoed tools) is validated
with openai-python's ``ResponseStreamEvent`` / ``Response`` instead; where the spec has them,
every output item, tool and tool-call event is checked with openai-python's types as well.
``validate_event_openai`` applies openai-python's types to any event it knows.
"""

from __future__ import annotations

import enum
import json
import typing
from typing import Any

import openresponses_types as spec
from openai.types.responses import Response, ResponseOutputItem, ResponseStreamEvent, Tool
from pydantic import Field, TypeAdapter

__all__ = ["EVENT_MODELS", "validate_event", "validate_event_openai", "validate_resource"]

_OPENAI_EVENT: TypeAdapter[Any] = TypeAdapter(
    typing.Annotated[ResponseStreamEvent, Field(discriminator="type")]
)
SPEC_ITEMS = frozenset({"message", "function_call", "function_call_output", "reasoning", "compaction"})
SPEC_TOOLS = frozenset({"function"})


def _type_value(model: Any) -> str | None:
    field = model.model_fields.get("type")
    if field is None:
        return None
    if isinstance(field.default, str):
        return field.default
    ann = field.annotation
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        values = [m.value for m in ann]
        return values[0] if len(values) == 1 else None
    args = typing.get_args(ann)
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


EVENT_MODELS: dict[str, Any] = {}
for _name in dir(spec):
    _model = getattr(spec, _name)
    if _name.endswith("StreamingEvent") and hasattr(_model, "model_fields"):
        _value = _type_value(_model)
        if _value:
            EVENT_MODELS[_value] = _model


def _beyond_spec(resource: dict[str, Any]) -> bool:
    return any(t.get("type") not in SPEC_TOOLS for t in resource.get("tools") or ()) or any(
        i.get("type") not in SPEC_ITEMS for i in resource.get("output") or ()
    )


# Every tool and output item is also checked against openai-python's types (a namespaced
# ``function_call`` is a spec item with a field only openai-python types), and so are the tool
# call events. Whole events and resources are not: the two disagree on purpose elsewhere (the
# spec's ``error`` event and free-form error codes, its ``json_schema`` echo).
_OPENAI_ITEM: TypeAdapter[Any] = TypeAdapter(
    typing.Annotated[typing.get_args(ResponseOutputItem)[0], Field(discriminator="type")]
)
_OPENAI_TOOL: TypeAdapter[Any] = TypeAdapter(
    typing.Annotated[typing.get_args(Tool)[0], Field(discriminator="type")]
)
_TOOL_EVENTS = ("response.function_call_arguments.", "response.custom_tool_call_input.")


MAX_CALL_ID = 64  # the spec's maxLength on call_id (its pydantic types do not check it)


def _call_ids(data: dict[str, Any]) -> None:
    item, resource = data.get("item"), data.get("response", data)
    items = [item] if isinstance(item, dict) else []
    items += resource.get("output") or [] if isinstance(resource, dict) else []
    for each in items:
        call_id = each.get("call_id")
        assert call_id is None or 0 < len(call_id) <= MAX_CALL_ID, (
            f"call_id {call_id!r} breaks the spec's length"
        )


def _item(item: dict[str, Any]) -> None:
    _OPENAI_ITEM.validate_python(item)


def _openai_parts(data: dict[str, Any]) -> None:
    """openai-python's view of the items and tools in an event or a resource."""
    item, resource = data.get("item"), data.get("response", data)
    if isinstance(item, dict):
        _item(item)
    if isinstance(resource, dict):
        for each in resource.get("output") or ():
            _item(each)
        for tool in resource.get("tools") or ():
            _OPENAI_TOOL.validate_python(tool)


def validate_event(raw: bytes) -> None:
    data = json.loads(raw)
    _call_ids(data)
    kind = data["type"]
    item, resource = data.get("item"), data.get("response")
    if (isinstance(item, dict) and item.get("type") not in SPEC_ITEMS) or (
        isinstance(resource, dict) and _beyond_spec(resource)
    ):
        validate_event_openai(raw)
        return
    model = EVENT_MODELS.get(kind)
    if model is None:
        assert kind in _OPENAI_KINDS, f"neither the spec nor openai-python has an event {kind!r}"
        validate_event_openai(raw)
        return
    if kind.startswith(_TOOL_EVENTS):
        validate_event_openai(raw)
    _openai_parts(data)
    model.model_validate_json(raw)


def validate_event_openai(raw: bytes) -> None:
    _OPENAI_EVENT.validate_json(raw)


_OPENAI_KINDS = frozenset(
    _type_value(m) for m in typing.get_args(typing.get_args(ResponseStreamEvent)[0]) if _type_value(m)
)


def validate_resource(raw: bytes) -> None:
    data = json.loads(raw)
    _call_ids(data)
    if _beyond_spec(data):
        Response.model_validate_json(raw)
        return
    _openai_parts(data)
    spec.ResponseResource.model_validate_json(raw)

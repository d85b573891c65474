"""The independent oracle: pydantic models generated from the spec by a third party.

``validate_event`` finds the spec's event model by its ``type`` and validates the bytes we
emitted; ``validate_resource`` does the same for a whole response.
"""

from __future__ import annotations

import enum
import json
import typing
from typing import Any

import openresponses_types as spec

__all__ = ["EVENT_MODELS", "validate_event", "validate_resource"]


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


def validate_event(raw: bytes) -> None:
    kind = json.loads(raw)["type"]
    model = EVENT_MODELS.get(kind)
    assert model is not None, f"the spec has no event {kind!r}"
    model.model_validate_json(raw)


def validate_resource(raw: bytes) -> None:
    spec.ResponseResource.model_validate_json(raw)

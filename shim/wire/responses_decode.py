"""Decode Open Responses request bodies, tolerating what real clients send.

The fast path decodes straight into ``CreateResponseBody``. Only when that fails do we take the
slow path: decode to plain data, normalise once (messages without ``type`` → ``message``, a bare
``{"id": ...}`` → ``item_reference``), then convert. Errors come out as ``InvalidRequest`` with
an OpenAI-style ``param`` (``input[2].content``), so the server can render them in the envelope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec

from shim.errors import InvalidRequest, UnsupportedParameter
from shim.wire.responses import (
    TYPED_ITEM_TYPES,
    CompactResponseMethodPublicBody,
    CreateResponseBody,
    ResponseResource,
    StreamingEvent,
)

__all__ = [
    "decode_compact_body",
    "decode_create_request",
    "decode_create_response_body",
    "decode_resource",
    "decode_streaming_event",
    "encode",
    "normalise_input_items",
    "validation_param",
]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
encode = _encoder.encode

_body_decoder = msgspec.json.Decoder(CreateResponseBody)


class _KnownFieldsOnly(CreateResponseBody, forbid_unknown_fields=True):
    """``CreateResponseBody`` that fails on a field it does not name: the fast path of
    ``decode_create_request`` finds out for free whether a body has unknown fields."""


_known_decoder = msgspec.json.Decoder(_KnownFieldsOnly)
_FIELDS = frozenset(CreateResponseBody.__struct_fields__)
_compact_decoder = msgspec.json.Decoder(CompactResponseMethodPublicBody)
_resource_decoder = msgspec.json.Decoder(ResponseResource)
_event_decoder = msgspec.json.Decoder(StreamingEvent)
_any_decoder = msgspec.json.Decoder()

_PATH = re.compile(r"at `\$(?P<path>[^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def validation_param(error: msgspec.ValidationError) -> str | None:
    """Turn msgspec's ``at `$.input[2].content``` into ``input[2].content``."""
    text = str(error)
    match = _PATH.search(text)
    path = match.group("path").lstrip(".") if match else ""
    missing = _MISSING.search(text)
    if missing:  # msgspec names the parent object; the client wants the field itself
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


def _message(error: msgspec.ValidationError) -> str:
    return str(error).split(" - at `", 1)[0]


def normalise_input_items(items: list[Any]) -> list[Any]:
    """Add the ``type`` tags that sloppy clients leave out, and wrap every item type the shim
    does not decode itself (hosted tools' calls, ``compaction_trigger``, ``program``…) in a
    ``hosted_item``, so a history holding one is never refused; leave everything else alone."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) and "type" not in item:
            if "role" in item:
                item = {**item, "type": "message"}
            elif "id" in item and len(item) == 1:
                item = {"type": "item_reference", "id": item["id"]}
        elif isinstance(item, dict) and item.get("type") is None and "id" in item:
            item = {**item, "type": "item_reference"}
        elif (
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and item["type"] not in (*TYPED_ITEM_TYPES, "hosted_item")
        ):
            item = {"type": "hosted_item", "item": item}
        out.append(item)
    return out


def _decode(data: bytes, fast: msgspec.json.Decoder[T], typ: type[T]) -> T:
    try:
        return fast.decode(data)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    try:  # a wrong type can be reported before bytes further on turn out to be no JSON at all
        raw = _any_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    if isinstance(raw.get("input"), list):
        raw["input"] = normalise_input_items(raw["input"])
    try:
        return msgspec.convert(raw, typ)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(
            f"Invalid request: {_message(exc)}", param=validation_param(exc), code="invalid_value"
        ) from None


# Chat Completions fields a client may carry over by mistake, and what Responses calls them.
# OpenAI answers these with 400 too; silently dropping one would ignore the client's limit.
_CHAT_ONLY = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}


def _top_level_keys(data: bytes) -> set[str]:
    raw = _any_decoder.decode(data)
    return set(raw) if isinstance(raw, dict) else set()


def decode_create_response_body(data: bytes) -> CreateResponseBody:
    body = _decode(data, _body_decoder, CreateResponseBody)
    if any(f'"{name}"'.encode() in data for name in _CHAT_ONLY):  # cheap test before a 2nd decode
        _refuse_chat_only(_top_level_keys(data))
    return body


def _refuse_chat_only(names: Iterable[str]) -> None:
    found = sorted(set(names) & _CHAT_ONLY.keys())
    if found:
        name = found[0]
        raise UnsupportedParameter(
            f"Unsupported parameter: `{name}` is a Chat Completions field; "
            f"Open Responses calls it `{_CHAT_ONLY[name]}`.",
            param=name,
        )


def decode_create_request(data: bytes) -> tuple[CreateResponseBody, tuple[str, ...]]:
    """The body, and the names of top-level fields it does not know (dropped from the body), so
    the turn can report them (``translate/request_fields.py``) instead of ignoring them."""
    try:
        return _known_decoder.decode(data), ()
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    try:
        raw = _any_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    unknown = tuple(name for name in raw if name not in _FIELDS)
    _refuse_chat_only(unknown)  # a Chat field carried over is refused, not merely reported
    known = {k: v for k, v in raw.items() if k in _FIELDS}
    return _decode(_encoder.encode(known), _body_decoder, CreateResponseBody), unknown


def decode_compact_body(data: bytes) -> CompactResponseMethodPublicBody:
    """The compact body; a field it does not define is refused, not dropped."""
    body = _decode(data, _compact_decoder, CompactResponseMethodPublicBody)
    unknown = sorted(_top_level_keys(data) - set(CompactResponseMethodPublicBody.__struct_fields__))
    if unknown:
        raise UnsupportedParameter(
            f"Unsupported parameter: `{unknown[0]}`; /v1/responses/compact accepts "
            + ", ".join(f"`{f}`" for f in CompactResponseMethodPublicBody.__struct_fields__)
            + ".",
            param=unknown[0],
        )
    return body


def decode_resource(data: bytes | str) -> ResponseResource:
    return _resource_decoder.decode(data)


def decode_streaming_event(data: bytes | str) -> StreamingEvent:
    event: StreamingEvent = _event_decoder.decode(data)
    return event

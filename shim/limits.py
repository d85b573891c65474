"""Request limits: what a client may send, checked before anything reaches an upstream.

Two passes. ``check_json_bytes`` looks at the raw body (valid UTF-8, nesting depth) before it
is decoded, so hostile bytes never reach a decoder's recursion; ``check_create_body`` looks at the
decoded body (item count, metadata, string lengths). String limits come from the Open Responses
spec (``maxLength`` on ``call_id``, ``name``, texts, ``metadata`` values…); the rest are
documented defaults in ``docs/operations.md``, set under ``[server.limits]``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from shim.errors import InvalidRequest

__all__ = ["Limits", "check_chat_body", "check_create_body", "check_json_bytes"]

_MIB = 1024 * 1024


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_input_items: int = 4096
    max_json_depth: int = 64
    max_tools: int = 512
    max_metadata_pairs: int = 16  # spec: MetadataParam maxProperties
    max_metadata_key_chars: int = 64
    max_metadata_value_chars: int = 512  # spec: MetadataParam additionalProperties maxLength
    # A WebSocket connection's own responses (``store: false`` ones live nowhere else), least
    # recently used evicted first; the newest is kept whatever its size.
    websocket_cache_entries: int = 32
    websocket_cache_bytes: int = 32 * _MIB


# Field name → (min, max) characters, from the spec's minLength/maxLength. Applied wherever the
# field occurs in an input item, a content part or a tool.
SPEC_LENGTHS: dict[str, tuple[int, int]] = {
    "call_id": (1, 64),
    "name": (1, 64),
    "text": (0, 10 * _MIB),
    "refusal": (0, 10 * _MIB),
    "content": (0, 10 * _MIB),  # when a string
    "output": (0, 10 * _MIB),  # function_call_output, when a string
    "encrypted_content": (0, 10 * _MIB),
    "image_url": (0, 20 * _MIB),
    "file_data": (0, 32 * _MIB),
}
_TOP_LEVEL_LENGTHS = {"input": 10 * _MIB, "safety_identifier": 64, "prompt_cache_key": 64}

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_KEEP = b'[]{}"\\'
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_OPEN_CLOSE = bytes.maketrans(b"[]{}", b"\x01\x00\x01\x00")


def check_json_bytes(data: bytes, limits: Limits) -> None:
    """Reject invalid UTF-8 and JSON nested deeper than ``max_json_depth`` (400)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid UTF-8 (byte {exc.start}).", code="invalid_utf8"
        ) from None
    if data.count(b"[") + data.count(b"{") <= limits.max_json_depth:
        return  # cannot be deeper than the number of brackets: the common case costs two counts
    structure = _STRINGS.sub(b"", data.translate(None, _DROP))  # brackets outside strings only
    depth = deepest = 0
    for opens in structure.translate(_OPEN_CLOSE):
        depth += 1 if opens else -1
        if depth > deepest:
            deepest = depth
            if deepest > limits.max_json_depth:
                raise InvalidRequest(
                    f"The request body nests JSON deeper than {limits.max_json_depth} levels.",
                    code="json_too_deep",
                )


def _too_long(param: str, limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"`{param}` is longer than the maximum of {limit} characters.", param=param, code="string_too_long"
    )


# The same limits for Chat Completions fields (OpenAI's Chat rules where it has them: function
# names 1 to 64). Tool call ids become Responses ``call_id``s when translated, so they share its
# 1 to 64; texts and data URLs get the Responses sizes.
CHAT_LENGTHS: dict[str, tuple[int, int]] = {
    "name": (1, 64),
    "tool_call_id": (1, 64),
    "id": (1, 64),  # tool_calls[].id
    "text": (0, 10 * _MIB),
    "refusal": (0, 10 * _MIB),
    "content": (0, 10 * _MIB),
    "arguments": (0, 10 * _MIB),
    "input": (0, 10 * _MIB),  # a custom tool call's input
    "reasoning_content": (0, 10 * _MIB),
    "reasoning": (0, 10 * _MIB),
    "url": (0, 20 * _MIB),  # image_url.url
    "data": (0, 20 * _MIB),  # input_audio.data
    "file_data": (0, 32 * _MIB),
}
_CHAT_TOP_LEVEL_LENGTHS = {"safety_identifier": 64, "prompt_cache_key": 64}


def _check_fields(obj: Any, path: str, lengths: dict[str, tuple[int, int]] = SPEC_LENGTHS) -> None:
    """Apply ``lengths`` to a wire struct and the structs and lists inside it."""
    if isinstance(obj, list):
        for n, item in enumerate(obj):
            _check_fields(item, f"{path}[{n}]", lengths)
        return
    if not isinstance(obj, msgspec.Struct):
        return
    for field in obj.__struct_fields__:
        value = getattr(obj, field)
        param = f"{path}.{field}"
        if isinstance(value, str):
            bounds = lengths.get(field)
            if bounds is not None and len(value) > bounds[1]:
                raise _too_long(param, bounds[1])
            if bounds is not None and len(value) < bounds[0]:
                raise InvalidRequest(f"`{param}` must not be empty.", param=param, code="string_too_short")
        elif isinstance(value, list | msgspec.Struct):
            _check_fields(value, param, lengths)


def check_create_body(body: Any, limits: Limits) -> None:
    """Limits on a decoded ``CreateResponseBody`` (or any body with the same field names)."""
    input_ = getattr(body, "input", None)
    if isinstance(input_, list):
        if len(input_) > limits.max_input_items:
            raise InvalidRequest(
                f"`input` has {len(input_)} items; the maximum is {limits.max_input_items}.",
                param="input",
                code="too_many_items",
            )
        _check_fields(input_, "input")
    for field, limit in _TOP_LEVEL_LENGTHS.items():
        value = getattr(body, field, None)
        if isinstance(value, str) and len(value) > limit:
            raise _too_long(field, limit)
    tools = getattr(body, "tools", None)
    if isinstance(tools, list):
        if len(tools) > limits.max_tools:
            raise InvalidRequest(
                f"`tools` has {len(tools)} entries; the maximum is {limits.max_tools}.",
                param="tools",
                code="too_many_items",
            )
        for n, tool in enumerate(tools):  # plain dicts on the request body
            name = tool.get("name") if isinstance(tool, dict) else getattr(tool, "name", None)
            if isinstance(name, str) and len(name) > SPEC_LENGTHS["name"][1]:
                raise _too_long(f"tools[{n}].name", SPEC_LENGTHS["name"][1])
    check_metadata(getattr(body, "metadata", None), limits)


def _too_many(param: str, count: int, limit: int, what: str) -> InvalidRequest:
    return InvalidRequest(
        f"`{param}` has {count} {what}; the maximum is {limit}.", param=param, code="too_many_items"
    )


def check_chat_body(req: Any, limits: Limits) -> None:
    """Limits on a decoded ``ChatCompletionRequest``: the same kinds as ``check_create_body``,
    with ``messages`` counted against ``max_input_items`` and ``tools`` plus the legacy
    ``functions`` against ``max_tools``."""
    messages = req.messages
    if len(messages) > limits.max_input_items:
        raise _too_many("messages", len(messages), limits.max_input_items, "messages")
    _check_fields(messages, "messages", CHAT_LENGTHS)
    for field in ("tools", "functions"):
        entries = getattr(req, field)
        if entries is None:
            continue
        if len(entries) > limits.max_tools:
            raise _too_many(field, len(entries), limits.max_tools, "entries")
        _check_fields(entries, field, CHAT_LENGTHS)
    for field, limit in _CHAT_TOP_LEVEL_LENGTHS.items():
        value = getattr(req, field)
        if isinstance(value, str) and len(value) > limit:
            raise _too_long(field, limit)
    check_metadata(req.metadata, limits)


def check_metadata(metadata: Any, limits: Limits) -> None:
    if not isinstance(metadata, dict):
        return
    if len(metadata) > limits.max_metadata_pairs:
        raise InvalidRequest(
            f"`metadata` has {len(metadata)} pairs; the maximum is {limits.max_metadata_pairs}.",
            param="metadata",
            code="too_many_items",
        )
    for key, value in metadata.items():
        if len(key) > limits.max_metadata_key_chars:
            raise InvalidRequest(
                f"A `metadata` key is longer than the maximum of {limits.max_metadata_key_chars} characters.",
                param="metadata",
                code="string_too_long",
            )
        if isinstance(value, str) and len(value) > limits.max_metadata_value_chars:
            raise _too_long(f"metadata.{key}", limits.max_metadata_value_chars)

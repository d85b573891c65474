"""Server-Sent Events: an incremental, sans-IO decoder and the few encoders the shim writes.

Why a module of its own: both sides of the shim speak SSE (upstream bytes come in as SSE, client events go out
as SSE), and recorded upstream bytes must decode identically however they are chunked, so tests can re-split
them at every byte. The decoder follows the WHATWG "event stream interpretation" rules with these documented
choices:

- Bytes are decoded with a stateful UTF-8 decode that keeps an incomplete trailing sequence for the next
  chunk; only truly invalid bytes become U+FFFD. A single BOM at the very start of the stream is dropped.
- Lines end at CRLF, LF or a lone CR. A CR that ends one chunk swallows an LF that starts the next one.
- ``event`` is ``None`` when the block had no ``event:`` field or an empty one (the spec's "message").
- ``id`` is the *last event id*, which persists across events as in the spec (``None`` until one is seen); an
  ``id`` value containing NUL is ignored. ``retry`` is the ASCII-digit ``retry:`` value given in the same
  block (also kept in ``SSEDecoder.retry``, since a block carrying only ``retry`` dispatches nothing).
- Deviation from the spec, on purpose: ``finish()`` dispatches a final event that was not followed by a blank
  line (truncated upstreams still deliver their last chunk). It never raises.

Speed matters (hundreds of thousands of chunks a second), so the work is done by ``str`` methods on whole
chunks: one decode, one ``split`` and a short loop over complete lines; a partial line is kept as a list of
parts.
"""

from __future__ import annotations

import codecs
from typing import Final

import msgspec

__all__ = [
    "DONE",
    "KEEPALIVE",
    "SSEDecoder",
    "SSEEvent",
    "encode_data",
    "encode_event",
    "encode_tagged",
]

DONE: Final = b"data: [DONE]\n\n"
KEEPALIVE: Final = b": keep-alive\n\n"

_utf8_decode = codecs.utf_8_decode


class SSEEvent(msgspec.Struct, frozen=True, gc=False):
    """One dispatched event. ``data`` lines are joined with ``"\\n"``; ``[DONE]`` is left to the caller."""

    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turn a byte stream into ``SSEEvent`` values: ``feed(chunk)`` for each chunk, then ``finish()`` once.

    After ``finish()`` the decoder is ready for a new stream; ``last_event_id`` survives, as a reconnect would
    send it. ``comments`` counts comment lines (those starting with ``:``), which are otherwise ignored.
    """

    __slots__ = (
        "_data",
        "_event",
        "_event_retry",
        "_parts",
        "_skip_lf",
        "_started",
        "_tail",
        "comments",
        "last_event_id",
        "retry",
    )

    def __init__(self) -> None:
        self._tail = b""  # an incomplete UTF-8 sequence waiting for its next bytes
        self._parts: list[str] = []  # the current line, not yet terminated
        self._started = False  # a non-empty text has been decoded (BOM handled)
        self._skip_lf = False  # the last text ended with CR: a leading LF next is part of that CRLF
        self._data: list[str] = []
        self._event: str | None = None
        self._event_retry: int | None = None
        self.last_event_id: str | None = None
        self.retry: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._tail:
            chunk = self._tail + chunk
            self._tail = b""
        text, used = _utf8_decode(chunk, "replace", False)
        if used != len(chunk):
            self._tail = bytes(chunk[used:])
        if not text:
            return []
        return self._feed_text(text)

    def finish(self) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if self._tail:
            text, _ = _utf8_decode(self._tail, "replace", True)
            self._tail = b""
            events = self._feed_text(text)
        # End the partial line (if any), then one blank line: the last block is dispatched.
        self._skip_lf = False
        events += self._feed_text("\n\n" if self._parts else "\n")
        self._started = False
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        if "\r" in text:
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        last = lines.pop()
        if not lines:  # no line ended in this chunk
            if last:
                self._parts.append(last)
            return []
        if self._parts:
            self._parts.append(lines[0])
            lines[0] = "".join(self._parts)
            self._parts = []
        if last:
            self._parts.append(last)
        # The per-line loop is the decoder's hot path: the block state lives in locals while it
        # runs, and the usual lines (blank, ``data: …``, ``event: …``) are tested first.
        events: list[SSEEvent] = []
        data = self._data
        event = self._event
        retry = self._event_retry
        for line in lines:
            if not line:  # blank line: dispatch if any data was seen
                if data:
                    events.append(SSEEvent(event, "\n".join(data), self.last_event_id, retry))
                    data = []
                event = None
                retry = None
            elif line[:6] == "data: ":
                data.append(line[6:])
            elif line[:7] == "event: ":
                event = line[7:] or None
            elif line[0] == ":":
                self.comments += 1
            else:
                field, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if field == "data":
                    data.append(value)
                elif field == "event":
                    event = value or None
                elif field == "id":
                    if "\0" not in value:
                        self.last_event_id = value
                elif field == "retry" and value.isascii() and value.isdigit():
                    retry = self.retry = int(value)
        self._data = data
        self._event = event
        self._event_retry = retry
        return events


def encode_data(data: bytes) -> bytes:
    """``data: …`` followed by a blank line. A value with line breaks becomes several ``data:`` lines."""
    if b"\n" in data or b"\r" in data:
        return _data_lines(data) + b"\n"
    return b"data: " + data + b"\n\n"


def encode_event(event_type: str, data: bytes) -> bytes:
    """``event: TYPE``, ``data: …`` and a blank line, LF only, no ``id:``."""
    if "\n" in event_type or "\r" in event_type:
        raise ValueError(f"SSE event type must not contain a line break: {event_type!r}")
    if b"\n" in data or b"\r" in data:
        return b"event: " + event_type.encode() + b"\n" + _data_lines(data) + b"\n"
    return b"event: " + event_type.encode() + b"\ndata: " + data + b"\n\n"


# Pre-encoded ``event: <type>\ndata: `` prefixes, one per tagged struct class (stream events).
_PREFIX: dict[type, bytes] = {}
_json = msgspec.json.Encoder()


def encode_tagged(event: msgspec.Struct) -> bytes:
    """A tagged msgspec struct (an Open Responses streaming event) as ``event: <tag>`` + its JSON."""
    cls = type(event)
    prefix = _PREFIX.get(cls)
    if prefix is None:
        tag = cls.__struct_config__.tag
        prefix = _PREFIX[cls] = b"event: " + str(tag).encode() + b"\ndata: "
    return prefix + _json.encode(event) + b"\n\n"


def _data_lines(data: bytes) -> bytes:
    # SSE cannot carry a bare CR inside a value: CRLF and CR both become LF, which the decoder joins back.
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return b"".join(b"data: " + line + b"\n" for line in lines)

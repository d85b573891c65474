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
chunks: one decode, one ``split`` into whole blocks (the text up to a blank line), and a test per block for
the usual shapes (``data: …`` alone or after ``event: …``); only other blocks are read line by line. The
text of an unfinished block is kept as a list of parts until its blank line arrives.
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
    Text is read a whole block (up to its blank line) at a time, so ``comments``, ``last_event_id`` and
    ``retry`` change when a block is complete (or at ``finish()``), never halfway through one.
    """

    __slots__ = (
        "_lead",
        "_lead_event",
        "_long",
        "_rest",
        "_skip_lf",
        "_started",
        "_tail",
        "comments",
        "last_event_id",
        "retry",
    )

    def __init__(self) -> None:
        self._tail = b""  # an incomplete UTF-8 sequence waiting for its next bytes
        self._rest = ""  # the start of a block its blank line has not ended yet (LF line ends only)
        self._long: list[str] = []  # the same, for a block too long to copy again with every chunk
        self._started = False  # a non-empty text has been decoded (BOM handled)
        self._skip_lf = False  # the last text ended with CR: a leading LF next is part of that CRLF
        # The last ``event: …\ndata: `` lead read, and its event type: the next event usually
        # has the same. No block starts with a blank line, so the first never matches.
        self._lead = "\n\n"
        self._lead_event: str | None = None
        self.last_event_id: str | None = None
        self.retry: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if chunk.isascii() and not self._tail:
            # Most chunks: ASCII text decodes the same without the stateful decoder's tuple.
            return self._feed_text(chunk.decode()) if chunk else []
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
        # The unfinished block, ended by a blank line (a partial last line ends there too).
        rest = "".join(self._long) + self._rest
        self._long = []
        self._rest = ""
        if rest:
            self._block(rest, events)
        self._skip_lf = False
        self._started = False
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if self._skip_lf or not self._started or "\r" in text:
            text = self._normalise(text)
            if not text:
                return []
        if self._long:
            # A long block goes on: join its parts once, when a blank line may have come.
            if "\n\n" not in text and not (text[0] == "\n" and self._long[-1][-1] == "\n"):
                self._long.append(text)
                return []
            text = "".join(self._long) + text
            self._long = []
        elif self._rest:
            text = self._rest + text
        blocks = text.split("\n\n")
        rest = blocks.pop()
        if len(rest) > _LONG:
            self._long = [rest]
            rest = ""
        self._rest = rest
        # Whole blocks. The hot path: ``data: …`` alone, or after ``event: …``; anything else is
        # read line by line.
        events: list[SSEEvent] = []
        for block in blocks:
            if "\n" not in block:
                if block[:6] == "data: ":
                    events.append(SSEEvent(None, block[6:], self.last_event_id))
                    continue
            elif block.startswith(self._lead):  # the same ``event: …`` line as the last block's
                data = block[len(self._lead) :]
                if "\n" not in data:
                    events.append(SSEEvent(self._lead_event, data, self.last_event_id))
                    continue
            elif block[:7] == "event: ":
                head, found, data = block.partition("\ndata: ")
                if found and "\n" not in data and "\n" not in head:
                    self._lead = head + found
                    self._lead_event = head[7:] or None
                    events.append(SSEEvent(self._lead_event, data, self.last_event_id))
                    continue
            self._block(block, events)
        return events

    def _normalise(self, text: str) -> str:
        """A leading BOM dropped, the LF of a CRLF split across chunks dropped, CR and CRLF as LF."""
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
        return text

    def _block(self, block: str, events: list[SSEEvent]) -> None:
        """The lines of one block (LF-separated), then the blank line that dispatches it."""
        data: list[str] = []
        event: str | None = None
        retry: int | None = None
        for line in block.split("\n"):
            if not line:  # a blank line inside: dispatch what came before it
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
        if data:
            events.append(SSEEvent(event, "\n".join(data), self.last_event_id, retry))


# A block longer than this waiting for its blank line is kept in parts, not copied again with
# every chunk (a megabyte-long line arriving in small chunks would cost quadratic time).
_LONG = 65536


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

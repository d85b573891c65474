"""Keep credentials out of what the shim says: error messages, stream events, stored records.

Some upstreams echo the key they were sent in their error messages ("Incorrect API key provided:
sk-…"). Those messages are worth passing on, so the key is cut out of them instead.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from shim.wire import responses as r

T = TypeVar("T")
E = TypeVar("E", bound=r.StreamingEvent | bytes)  # bytes: text deltas already written as SSE

__all__ = [
    "ByteRedactor",
    "EventRedactor",
    "Redactor",
    "StreamRedactor",
    "redact",
    "redact_bytes",
    "redact_event",
]

MARK = "[redacted]"
_CARRIERS = (r.ErrorStreamingEvent, r.ResponseFailedStreamingEvent)  # events with a message


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret``, nor its last 8 characters when the key is long (vendors often
    show a masked key as ``sk-…abcd1234``)."""
    if not secret or len(secret) < 4 or not text:
        return text
    text = text.replace(secret, MARK)
    return text.replace(secret[-8:], MARK) if len(secret) >= 12 else text


def redact_bytes(data: bytes, secret: str | None) -> bytes:
    """A whole answer passed on as bytes (Chat pass-through), the key cut out as ``redact`` does."""
    if not secret or len(secret) < 4:
        return data
    stream = StreamRedactor(secret)
    return stream.feed(data) + stream.flush()


def redact_event(event: r.StreamingEvent, secret: str | None) -> None:
    """Redact the error messages an ``error`` or ``response.failed`` event carries, in place."""
    if not secret:
        return
    if isinstance(event, r.ErrorStreamingEvent):
        event.error.message = redact(event.error.message, secret)
    elif isinstance(event, r.ResponseFailedStreamingEvent) and event.response.error is not None:
        event.response.error.message = redact(event.response.error.message, secret)


class StreamRedactor:
    """``redact`` over a byte stream passed through as it comes (Chat pass-through).

    A key may be split between two chunks, so the end of a chunk that could be the start of the
    key is held back until the next chunk shows whether it is. Nothing else is delayed: an SSE
    event ends in a blank line, which never begins a key.
    """

    def __init__(self, secret: str) -> None:
        self.patterns = [secret.encode()]
        if len(secret) >= 12:
            self.patterns.append(secret[-8:].encode())
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        data = self.pending + data
        for pattern in self.patterns:
            if pattern in data:
                data = data.replace(pattern, MARK.encode())
        keep = self._held(data)
        self.pending = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep] if keep else data

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        return rest

    def _held(self, data: bytes) -> int:
        """Length of the longest end of ``data`` that is a proper start of a pattern."""
        longest = 0
        for pattern in self.patterns:
            start = max(0, len(data) - len(pattern) + 1)
            at = data.find(pattern[:1], start)
            while at != -1:
                if pattern.startswith(data[at:]):
                    longest = max(longest, len(data) - at)
                    break
                at = data.find(pattern[:1], at + 1)
        return longest


class Redactor(Protocol[T]):
    """What the pump runs every batch it sends through (``shim.turns.pump``)."""

    def __call__(self, batch: list[T]) -> list[T]: ...

    def flush(self) -> list[T]: ...


class EventRedactor:
    """Open Responses events: the messages of ``error`` and ``response.failed``, in place."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret

    def __call__(self, batch: list[E]) -> list[E]:
        if self.secret:
            for event in batch:
                if isinstance(event, _CARRIERS):  # one test per event: text deltas go by at once
                    redact_event(event, self.secret)
        return batch

    def flush(self) -> list[E]:
        return []


class ByteRedactor:
    """Bytes passed on as they come (pass-through, Chat chunks): the key wherever it appears."""

    def __init__(self, secret: str | None) -> None:
        self.stream = StreamRedactor(secret) if secret and len(secret) >= 4 else None

    def __call__(self, batch: list[bytes]) -> list[bytes]:
        stream = self.stream
        if stream is None:
            return batch
        out = [stream.feed(data) for data in batch]
        return [data for data in out if data]

    def flush(self) -> list[bytes]:
        rest = self.stream.flush() if self.stream is not None else b""
        return [rest] if rest else []

"""Keep credentials out of what the shim says: error messages, stream events, stored records.

Some upstreams echo the key they were sent in their error messages ("Incorrect API key provided:
sk-…"). Those messages are worth passing on, so the key is cut out of them instead.
"""

from __future__ import annotations

from shim.wire import responses as r

__all__ = ["redact", "redact_event"]

MARK = "[redacted]"


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret``, nor its last 8 characters when the key is long (vendors often
    show a masked key as ``sk-…abcd1234``)."""
    if not secret or len(secret) < 4 or not text:
        return text
    text = text.replace(secret, MARK)
    return text.replace(secret[-8:], MARK) if len(secret) >= 12 else text


def redact_event(event: r.StreamingEvent, secret: str | None) -> None:
    """Redact the error messages an ``error`` or ``response.failed`` event carries, in place."""
    if not secret:
        return
    if isinstance(event, r.ErrorStreamingEvent):
        event.error.message = redact(event.error.message, secret)
    elif isinstance(event, r.ResponseFailedStreamingEvent) and event.response.error is not None:
        event.response.error.message = redact(event.response.error.message, secret)

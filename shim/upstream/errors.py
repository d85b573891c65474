"""Upstream failures → the one error tree of ``shim.errors``, before and after the answer began.

``upstream_error``: an upstream's non-2xx answer. Upstream 4xx are passed on with their own
status and message (429 stays 429); 5xx become 502 (the shim is a gateway). The upstream's own
message is kept: it is what the user can act on.

``as_upstream_error``: whatever ended an exchange (httpx's transport errors, our idle timeout, the
total-time and size limits, which already raise tree classes) as an ``UpstreamError``, counted
once in the metrics. The pump renders the result mid-stream; ``UpstreamClient`` raises it before.
"""

from __future__ import annotations

import httpx
import msgspec

from shim.dialects.model import ErrorRules
from shim.errors import (
    ContextLengthExceeded,
    RateLimited,
    ShimError,
    UpstreamError,
    UpstreamInvalidResponse,
    UpstreamReset,
    UpstreamStatusError,
    UpstreamTimeout,
)
from shim.telemetry import note_upstream_error
from shim.wire.chat import decode_error

__all__ = ["STREAM_FAILURES", "as_upstream_error", "upstream_error"]

# What reading an upstream answer may raise: httpx's errors, our idle timeout (``TimeoutError``),
# data that decodes to no chunk or event, and the tree's own classes (size and total-time limits).
STREAM_FAILURES = (httpx.HTTPError, TimeoutError, msgspec.DecodeError, ShimError)


def upstream_error(
    status: int, body: bytes, retry_after: str | None = None, rules: ErrorRules | None = None
) -> ShimError:
    """``rules``: the route dialect's error rules; a context-length overflow in the vendor's
    words becomes one ``ContextLengthExceeded`` (400, whatever status the vendor used)."""
    try:
        parsed = decode_error(body)
    except Exception:  # an error body is never trusted to be well-formed
        parsed = None
    text = body[:500].decode("utf-8", "replace").strip()
    message = parsed.message if parsed is not None and parsed.message else (text or f"HTTP {status}")
    code = parsed.code if parsed is not None else None
    param = parsed.param if parsed is not None else None
    headers = {"Retry-After": retry_after} if retry_after else None
    type_ = parsed.type if parsed is not None else None
    if rules is not None and rules.is_context_length(status, code, type_, message):
        return ContextLengthExceeded(
            f"The input is too long for the model's context window (upstream: {message})", param="input"
        )
    if status == 429:
        return RateLimited(f"Upstream rate limit: {message}", code=code, headers=headers)
    if 400 <= status < 500:
        return UpstreamStatusError(message, status=status, code=code or "upstream_rejected", param=param)
    error = UpstreamError(f"Upstream error (HTTP {status}): {message}", code="upstream_error")
    error.upstream_status = status  # 502/503 say the work was not done (failover.py)
    return error


def as_upstream_error(exc: BaseException) -> UpstreamError:
    """The tree class for what ended an upstream answer after it began; counted."""
    if isinstance(exc, UpstreamError):
        error = exc
    elif isinstance(exc, ShimError):
        error = UpstreamError(exc.message, code=exc.code)
    elif isinstance(exc, msgspec.DecodeError):  # ValidationError included
        error = UpstreamInvalidResponse("The upstream sent stream data that is not a valid chunk.")
    elif isinstance(exc, httpx.TimeoutException | TimeoutError):
        error = UpstreamTimeout("The upstream stopped sending.")
    else:
        error = UpstreamReset("The upstream connection broke.")
    note_upstream_error((error.code or "upstream_error").removeprefix("upstream_"))
    return error

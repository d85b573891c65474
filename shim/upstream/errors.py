"""An upstream's non-2xx answer → the shim's error, with the status a client should see.

Upstream 4xx are passed on with their own status and message (429 stays 429); 5xx become 502
(the shim is a gateway). The upstream's own message is kept: it is what the user can act on.
"""

from __future__ import annotations

from shim.errors import RateLimited, ShimError, UpstreamError, UpstreamStatusError
from shim.wire.chat import decode_error

__all__ = ["upstream_error"]


def upstream_error(status: int, body: bytes, retry_after: str | None = None) -> ShimError:
    try:
        parsed = decode_error(body)
    except Exception:  # an error body is never trusted to be well-formed
        parsed = None
    text = body[:500].decode("utf-8", "replace").strip()
    message = parsed.message if parsed is not None and parsed.message else (text or f"HTTP {status}")
    code = parsed.code if parsed is not None else None
    param = parsed.param if parsed is not None else None
    headers = {"Retry-After": retry_after} if retry_after else None
    if status == 429:
        return RateLimited(f"Upstream rate limit: {message}", code=code, headers=headers)
    if 400 <= status < 500:
        return UpstreamStatusError(message, status=status, code=code or "upstream_rejected", param=param)
    return UpstreamError(f"Upstream error (HTTP {status}): {message}", code="upstream_error")

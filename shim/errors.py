"""The one exception tree. Every error the shim raises on purpose is a ``ShimError``.

    ShimError                       500 server_error
    ├── InvalidRequest              400 invalid_request_error
    │   ├── UnsupportedParameter    400 invalid_request_error / unsupported_parameter
    │   ├── ContextLengthExceeded   400 invalid_request_error / context_length_exceeded (any vendor's wording)
    │   ├── InvalidEncryptedContent 400 invalid_request_error / invalid_encrypted_content
    │   └── McpServerNotAllowed     400 invalid_request_error / mcp_server_not_allowed
    ├── AuthenticationError         401 authentication_error
    ├── NotFound                    404 invalid_request_error / not_found
    │   ├── ModelNotFound           404 invalid_request_error / model_not_found
    │   └── PreviousResponseNotFound 404 invalid_request_error / previous_response_not_found
    ├── PayloadTooLarge             413 invalid_request_error / request_too_large
    ├── RateLimited                 429 rate_limit_error (upstream 429, passed on)
    ├── HostedToolError             424 external_connector_error / mcp_server_unreachable (an MCP
    │                               server or the web search provider did not answer its tool list)
    └── UpstreamError               502 upstream_error
        ├── UpstreamStatusError     upstream 4xx passed on with its status and message
        ├── UpstreamTimeout         504 upstream_timeout (first byte, idle or total time)
        ├── UpstreamUnreachable     502 upstream_unreachable (no answer: connect failed)
        ├── UpstreamReset           502 upstream_reset (the connection broke: maybe received, never re-sent)
        ├── UpstreamMisconfigured   502 upstream_misconfigured (a key or header that cannot be sent)
        ├── UpstreamTooLarge        502 upstream_response_too_large
        ├── UpstreamTruncated       502 upstream_stream_truncated (no terminal event / [DONE])
        └── UpstreamInvalidResponse 502 upstream_invalid_response (a 2xx that is no answer)

Each class carries its HTTP status, error ``type`` and ``code``; ``envelope()`` renders the
OpenAI shape ``{"error": {"message", "type", "param", "code"}}``. Upstream failures take the same
classes whether they happen before the answer began (an HTTP error status) or in the middle of a
stream (``response.failed`` / a final error chunk): ``shim.upstream.errors.as_upstream_error``
maps every transport exception to one of them, and the pump renders it.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "ContextLengthExceeded",
    "HostedToolError",
    "InvalidEncryptedContent",
    "InvalidRequest",
    "McpServerNotAllowed",
    "ModelNotFound",
    "NotFound",
    "PayloadTooLarge",
    "PreviousResponseNotFound",
    "RateLimited",
    "ShimError",
    "UnsupportedParameter",
    "UpstreamError",
    "UpstreamInvalidResponse",
    "UpstreamMisconfigured",
    "UpstreamReset",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamTooLarge",
    "UpstreamTruncated",
    "UpstreamUnreachable",
]


class ShimError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.http_status = status if status is not None else self.status
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(ShimError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class UnsupportedParameter(InvalidRequest):
    default_code = "unsupported_parameter"


class ContextLengthExceeded(InvalidRequest):
    """The input does not fit the model's context window: the upstream said so in its own words
    (``ErrorRules`` in ``mappings/``), or the shim could not trim it to fit
    (``conversation/truncation.py``)."""

    default_code = "context_length_exceeded"


class InvalidEncryptedContent(InvalidRequest):
    default_code = "invalid_encrypted_content"


class McpServerNotAllowed(InvalidRequest):
    """A client's MCP ``server_url`` outside the operator's ``mcp_allow`` list: refused before
    any connection (shim/hosted/servers.py)."""

    default_code = "mcp_server_not_allowed"


class AuthenticationError(ShimError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class NotFound(ShimError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class PreviousResponseNotFound(NotFound):
    default_code = "previous_response_not_found"


class PayloadTooLarge(ShimError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(ShimError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class HostedToolError(ShimError):
    """A hosted tool's server could not be used at all (OpenAI answers these 424 too)."""

    status = 424
    type = "external_connector_error"
    default_code = "mcp_server_unreachable"


class UpstreamError(ShimError):
    status = 502
    type = "server_error"
    default_code = "upstream_error"
    # What failover needs to know (shim/upstream/failover.py), set where the error is made:
    # ``sent`` False when the request provably never left (connect failure, connect or pool
    # timeout); ``upstream_status`` the upstream's own 5xx status.
    sent: bool = True
    upstream_status: int | None = None


class UpstreamStatusError(UpstreamError):
    """An upstream 4xx, passed on with the upstream's own status and message."""

    type = "invalid_request_error"
    default_code = "upstream_rejected"


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


class UpstreamUnreachable(UpstreamError):
    default_code = "upstream_unreachable"


class UpstreamReset(UpstreamError):
    default_code = "upstream_reset"


class UpstreamMisconfigured(UpstreamError):
    """A route's key or header the shim will not send (CR, LF or NUL in it); nothing was sent."""

    default_code = "upstream_misconfigured"


class UpstreamTooLarge(UpstreamError):
    default_code = "upstream_response_too_large"


class UpstreamTruncated(UpstreamError):
    """The upstream's stream ended before its terminal event (or ``[DONE]``)."""

    default_code = "upstream_stream_truncated"

    def __init__(self, message: str = "The upstream stream ended unexpectedly.", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class UpstreamInvalidResponse(UpstreamError):
    default_code = "upstream_invalid_response"

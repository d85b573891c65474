"""Where a hosted ``mcp`` tool connects, and who may say so.

Outbound connections go only where the operator allows (docs/hosted.md):

- ``[[mcp_servers]]``: servers the operator registered; a client names one by ``server_label``
  alone, and its ``headers`` never reach a client.
- ``mcp_allow`` (``SHIM_MCP_ALLOW``): globs matched against a client's whole ``server_url``.
  Empty by default: a client-supplied URL is refused (400 ``mcp_server_not_allowed``) before any
  connection. Only ``http`` and ``https``; every request the MCP client makes (redirects, the SSE
  transport's message endpoint) is checked again (``Guard``).

A client's ``headers`` / ``authorization`` go to that server only: they live in ``McpServer``
for the length of the turn, and in the HTTP client of a session kept for that server and those
headers (``sessions.py``) until it closes; nowhere else (not upstream, not in the store, not in
logs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

import httpx

from shim.errors import InvalidRequest, McpServerNotAllowed
from shim.settings import McpServer as RegisteredServer
from shim.settings import Settings, WebSearchProvider, check_hosted

__all__ = ["Guard", "HostedConfig", "McpServer", "allowed_url", "resolve_server"]

_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class McpServer:
    """One server for one turn. ``headers`` may hold a client's secrets: never log or store it."""

    label: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    registered: bool = False  # an operator's [[mcp_servers]] entry
    description: str | None = None


@dataclass(frozen=True)
class HostedConfig:
    """The operator's hosted-tool settings, as the turns read them (``TurnContext.hosted``)."""

    allow: tuple[str, ...] = ()
    servers: Mapping[str, RegisteredServer] = field(default_factory=dict)
    connect_timeout: float = 10.0
    call_timeout: float = 60.0
    max_output_bytes: int = 1024 * 1024
    max_rounds: int = 8
    web_search: WebSearchProvider | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HostedConfig:
        check_hosted(settings)  # load_settings did; settings built in code have not
        server = settings.server
        registered = {s.label: s for s in settings.mcp_servers}
        return cls(
            allow=server.mcp_allow,
            servers=registered,
            connect_timeout=server.mcp_connect_timeout,
            call_timeout=server.mcp_call_timeout,
            max_output_bytes=server.mcp_max_output_bytes,
            max_rounds=server.hosted_max_rounds,
            web_search=settings.web_search,
        )

    def registered_server(self, label: str) -> McpServer:
        entry = self.servers[label]
        return McpServer(
            label, entry.url, dict(entry.headers), registered=True, description=entry.description
        )


def allowed_url(url: str, allow: tuple[str, ...]) -> bool:
    """``url`` is http(s) and matches one of the operator's globs, on the whole URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in _SCHEMES or not parts.netloc:
        return False
    return any(fnmatchcase(url, pattern) for pattern in allow)


def resolve_server(tool: Mapping[str, object], config: HostedConfig, where: str) -> McpServer:
    """The server a client's ``mcp`` tool names, or a 400 before any connection."""
    label = tool.get("server_label")
    if not isinstance(label, str) or not label:
        raise InvalidRequest("An mcp tool needs a `server_label`.", param=f"{where}.server_label")
    url = tool.get("server_url")
    headers = tool.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise InvalidRequest("`headers` must map names to strings.", param=f"{where}.headers")
    authorization = tool.get("authorization")
    if authorization is not None and not isinstance(authorization, str):
        raise InvalidRequest("`authorization` must be a string.", param=f"{where}.authorization")
    if url is None:
        if tool.get("connector_id") is not None:
            raise InvalidRequest(
                "Connectors are not available here; give a `server_url` or a registered `server_label`.",
                param=f"{where}.connector_id",
            )
        if label not in config.servers:
            raise McpServerNotAllowed(
                f"No MCP server is registered under the label {label!r}; give a `server_url`.",
                param=f"{where}.server_label",
            )
        if headers or authorization:
            raise InvalidRequest(
                "A registered MCP server takes the operator's headers, not a client's.",
                param=f"{where}.headers",
            )
        return config.registered_server(label)
    if not isinstance(url, str) or not allowed_url(url, config.allow):
        raise McpServerNotAllowed(
            "This MCP server_url is not allowed here (the operator's mcp_allow list).",
            param=f"{where}.server_url",
        )
    sent = dict(headers)
    if authorization:
        sent["Authorization"] = f"Bearer {authorization}"
    description = tool.get("server_description")
    return McpServer(label, url, sent, description=description if isinstance(description, str) else None)


class Guard:
    """An httpx request hook: every request the MCP client sends (the first, redirects, the SSE
    transport's message endpoint) must be one the operator allows; else it is never sent."""

    def __init__(self, server: McpServer, allow: tuple[str, ...]) -> None:
        self.server = server
        self.allow = allow
        self.refused: str | None = None  # why a request was stopped, for the error message

    def permits(self, url: httpx.URL) -> bool:
        text = str(url)
        if self.server.registered:  # the operator's own server: its origin only
            origin = httpx.URL(self.server.url)
            return url.scheme == origin.scheme and url.netloc == origin.netloc
        return allowed_url(text, self.allow)

    async def __call__(self, request: httpx.Request) -> None:
        if not self.permits(request.url):
            self.refused = f"a request to {request.url.scheme}://{request.url.host} is outside the allow list"
            raise McpServerNotAllowed(f"MCP server {self.server.label!r}: {self.refused}")

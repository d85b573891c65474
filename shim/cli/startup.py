"""Checks that run before ``shim serve`` prints its banner or starts anything.

Each problem becomes one line that says what is wrong and what is allowed (``StartupError``,
exit status 2, no traceback); things that will not stop the start but will fail requests later
become warnings. The values' own rules (numbers, enums) are checked in ``shim.settings``; here
are the checks that need the registry, a URL parser or the network stack.
"""

from __future__ import annotations

import errno
import os
import socket
from urllib.parse import urlsplit

from shim.conversation.prompts import PromptError, load_prompts
from shim.dialects.registry import default_registry
from shim.settings import AUTO_DIALECT, Route, Settings
from shim.store.backends import check_store_url

__all__ = ["StartupError", "check_port", "check_settings", "check_upstream_url"]


class StartupError(Exception):
    """A setting that stops the start; its message is the one line the user sees."""


def _where(route: Route, index: int, count: int) -> str:
    return "" if count == 1 and route.match == "*" else f" (route {index}, match {route.match!r})"


def check_upstream_url(url: str) -> str | None:
    """Raise on a URL the shim cannot call; return a warning for one that will likely 404."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        example = f"http://{url.split('://')[-1]}" if "://" not in url and url else "http://127.0.0.1:8000/v1"
        raise StartupError(
            f"upstream URL {url!r} needs an http:// or https:// scheme and a host, e.g. {example}"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise StartupError(f"upstream URL {url!r} has a bad port") from None
    if not parts.path.rstrip("/").endswith("/v1"):
        return (
            f"upstream URL {url!r} does not end in /v1: most servers serve the API there "
            f"(did you mean {url.rstrip('/')}/v1?); requests will get the upstream's 404 otherwise"
        )
    return None


def check_settings(settings: Settings) -> list[str]:
    """Raise :class:`StartupError` on the first fatal problem; return the warnings."""
    warnings: list[str] = []
    known = default_registry()
    routes = settings.routes
    for index, first in enumerate(routes):
        for number, route in enumerate(first.candidates()):  # its fallback upstreams too
            where = _where(first, index, len(routes)) + (f" (fallback {number})" if number else "")
            if route.dialect != AUTO_DIALECT and route.dialect not in known:
                raise StartupError(
                    f"unknown dialect {route.dialect!r}{where}: use one of {', '.join(sorted(known))}"
                    f" (or {AUTO_DIALECT} to ask the upstream)"
                )
            warning = check_upstream_url(route.upstream)
            if warning:
                warnings.append(warning + where)
            if route.api_key_env and not os.environ.get(route.api_key_env):
                warnings.append(
                    f"{route.api_key_env} is not set{where}: requests on this route will reach the upstream "
                    "without a key"
                )
    try:
        check_store_url(settings.server.store)
    except ValueError as exc:
        raise StartupError(f"--store / SHIM_STORE: {exc}") from None
    try:
        load_prompts(settings.server.prompts_dir)
    except PromptError as exc:
        raise StartupError(f"prompts_dir / SHIM_PROMPTS_DIR: {exc}") from None
    return warnings


def check_port(host: str, port: int) -> None:
    """Raise when ``host:port`` cannot be listened on (taken, or not an address of this machine).

    Binds and closes with SO_REUSEADDR, as uvicorn binds: a port in TIME_WAIT is not "taken".
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(
            f"--host / SHIM_HOST {host!r}: not an address of this machine ({exc.strerror})"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise StartupError(
                f"cannot listen on {host}:{port}: {reason}; choose another with --port / SHIM_PORT"
            ) from None

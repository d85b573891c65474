"""A route's settings for small models, applied to a Responses request before translation.

Its loop guard (``max_tool_rounds``), and its output limit, temperature and stop sequences for
requests that set none. Stop sequences go only with requests whose answer must be text: one
inside a call's arguments would cut their JSON.
"""

from __future__ import annotations

import msgspec

from shim.settings import Route
from shim.translate.tool_rounds import tool_rounds
from shim.wire import responses as r

__all__ = ["apply_route_policies"]


def apply_route_policies(
    body: r.CreateResponseBody, route: Route, items: list[r.ItemParam]
) -> r.CreateResponseBody:
    changes: dict[str, object] = {}
    if body.max_output_tokens is None and route.max_output_tokens is not None:
        changes["max_output_tokens"] = route.max_output_tokens
    if body.temperature is None and route.temperature is not None:
        changes["temperature"] = route.temperature
    tool_choice = body.tool_choice
    if route.max_tool_rounds is not None and body.tools and tool_rounds(items) >= route.max_tool_rounds:
        changes["tool_choice"] = tool_choice = "none"  # the loop guard: answer now
    if body.stop is None and route.stop and (not body.tools or tool_choice == "none"):
        changes["stop"] = list(route.stop)
    return msgspec.structs.replace(body, **changes) if changes else body

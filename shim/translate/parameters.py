"""The one table of parameters both formats name alike, and what happens to each.

Both request directions (``chat_request.to_chat_request``: Responses → Chat,
``responses_request.to_responses_request``: Chat → Responses) and the request echo
(``echo.response_template``) read this table, so a parameter is added once and a test row
(``tests/test_parameters.py``) proves each place honours it. Parameters that change shape
between the formats (``max_output_tokens``/``max_tokens``, ``reasoning``, ``text``/
``response_format``, tools, ``service_tier``'s defaults, ``top_logprobs``) stay named code in
their module.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from shim.wire import chat as c
from shim.wire import responses as r

__all__ = ["SAME_NAME", "SameName", "copy_same_name", "echoed"]


class SameName(NamedTuple):
    name: str
    to_chat: bool = True  # a Responses request's value goes to the Chat upstream as is
    to_responses: bool = True  # a Chat request's value goes to the Responses upstream as is
    echo: bool = False  # the response resource repeats it
    echo_default: Any = None  # what the resource says when the request left it out


SAME_NAME: tuple[SameName, ...] = (
    SameName("temperature", echo=True, echo_default=1.0),
    SameName("top_p", echo=True, echo_default=1.0),
    SameName("presence_penalty", echo=True, echo_default=0.0),
    SameName("frequency_penalty", echo=True, echo_default=0.0),
    SameName("seed"),
    SameName("user"),
    SameName("prompt_cache_key", echo=True),
    SameName("safety_identifier", echo=True),
    # Chat stop sequences are emulated over Responses (``StopFilter``), never sent.
    SameName("stop", to_responses=False),
    # OpenAI's Chat API takes ``metadata`` only with ``store: true``: not sent to Chat upstreams.
    SameName("metadata", to_chat=False, echo=True, echo_default={}),
    SameName("max_tool_calls", to_chat=False, to_responses=False, echo=True),
)

_TO_CHAT = tuple(p.name for p in SAME_NAME if p.to_chat)
_TO_RESPONSES = tuple(p.name for p in SAME_NAME if p.to_responses)
_ECHO = tuple((p.name, p.echo_default) for p in SAME_NAME if p.echo)


def copy_same_name(
    source: r.CreateResponseBody | c.ChatCompletionRequest,
    target: r.CreateResponseBody | c.ChatCompletionRequest,
    direction: Literal["to_chat", "to_responses"],
) -> None:
    """``target`` is a fresh request, these fields unset (``None``): only the values ``source``
    has are written (most requests set none of them: a ``setattr`` less each, issue 18)."""
    for name in _TO_CHAT if direction == "to_chat" else _TO_RESPONSES:
        value = getattr(source, name)
        if value is not None:
            setattr(target, name, value)


def echoed(body: r.CreateResponseBody) -> dict[str, Any]:
    """The echoed values as keyword arguments of ``ResponseResource`` (defaults filled in; a
    mutable default is copied, never shared)."""
    out: dict[str, Any] = {}
    for name, default in _ECHO:
        value = getattr(body, name)
        out[name] = value if value is not None else (default.copy() if isinstance(default, dict) else default)
    return out

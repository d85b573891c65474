"""Reasoning replay across a failover: only to an upstream of the dialect family that made it.

Reasoning goes back upstream in two forms: as text (a Chat upstream's ``reasoning_content``,
``reasoning`` or ``<think>`` tags, per its dialect's ``reasoning_replay``) and as a vendor's opaque
``encrypted_content`` (a Responses upstream's own). Text from one model family handed to another
is another model's chain of thought; a vendor blob handed to another vendor is a 400 that would
poison every later turn of the thread. So a route whose upstreams span several families replays a
reasoning item only to the family that produced it, and drops the others from that one request,
with an ``unsupported_item`` diagnostic (never a refusal: the client did nothing wrong, so the
``error`` diagnostics policy does not turn it into a 400).

- **Family**: the first dialect below ``openai`` in the dialect's ``extends`` chain (``openai``
  itself for it): ``llamacpp-python-functions`` → ``llamacpp``, ``nim`` → ``vllm``,
  ``think-tags-open`` → ``think-tags``, ``deepseek`` → ``deepseek``.
- **Origin**: where a reasoning item came from is recorded when the shim makes it: in the stored
  response (``StoredResponse.reasoning_origins``, item id → family, carried along the chain) and
  inside sealed reasoning blobs (``encrypted_content`` for stateless clients). Reasoning whose
  origin is unknown (made before this was recorded, sent by the client in plain or as a vendor's
  own blob, read from a conversation's items) counts as made by the route's own (first)
  upstream: that is where a route's answers come from unless it is failing.
- A route whose upstreams are all one family (every single-upstream route) replays as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from shim.core.diagnostics import Diagnostic, Diagnostics
from shim.dialects.model import Dialect
from shim.dialects.registry import get_dialect
from shim.upstream.routing import Resolved
from shim.wire import responses as r

__all__ = ["family", "mixed_families", "origins_of", "replayable"]

_BASE = "openai"


def family(dialect: Dialect) -> str:
    """The dialect family: the first dialect under ``openai`` in the ``extends`` chain."""
    current = dialect
    seen = {current.name}
    while current.extends not in (None, _BASE) and current.extends not in seen:
        current = get_dialect(current.extends)
        seen.add(current.name)
    return current.name


def mixed_families(resolved: Resolved) -> bool:
    """Do the route's upstreams span more than one family?"""
    if not resolved.fallbacks:
        return False
    first = family(resolved.dialect)
    return any(family(fallback.dialect) != first for fallback in resolved.fallbacks)


def origins_of(items: Sequence[r.ItemParam | r.ItemField], produced_by: str) -> dict[str, str]:
    """Reasoning item id → ``produced_by``, for the items one upstream just produced."""
    return {
        item.id: produced_by
        for item in items
        if isinstance(item, r.ReasoningItemParam | r.ReasoningBody) and isinstance(item.id, str) and item.id
    }


def replayable(
    items: list[r.ItemParam],
    origins: Sequence[str | None],
    target: str,
    unknown: str,
    diags: Diagnostics,
    first_input: int = 0,
) -> list[r.ItemParam]:
    """``items`` without the reasoning whose origin (``origins[n]``; ``unknown`` when ``None``)
    is not ``target``, the family of the upstream about to be asked; each one dropped is
    reported (``items[first_input:]`` are the request's own input). The same list when nothing
    is dropped."""
    if not any(isinstance(item, r.ReasoningItemParam) for item in items):
        return items
    kept: list[r.ItemParam] = []
    for n, item in enumerate(items):
        origin = (origins[n] if n < len(origins) else None) or unknown
        if isinstance(item, r.ReasoningItemParam) and origin != target:
            where = f"input[{n - first_input}]" if n >= first_input else "previous_response_id"
            message = f"Reasoning made by the {origin} family is not replayed to a {target} upstream."
            _report(diags, message, where)
            continue
        kept.append(item)
    return kept if len(kept) < len(items) else items


def _report(diags: Diagnostics, message: str, param: str) -> None:
    """Reported under ``warn`` and ``error`` alike: dropping it is the shim's choice, not a fault
    of the request."""
    if diags.policy != "ignore":
        diags.items.append(Diagnostic("unsupported_item", message, param))

"""The one history rule: what a turn continues from, for every caller.

``previous_response_id``, item references and pending background responses mean the same on
every path that reads history: a Responses turn over Chat, the pass-through to a stateless
Responses upstream, compaction and WebSocket turns (which look in their connection's own
responses first). The rule:

- ``previous_response_id`` absent (``None``): no history. Present, even ``""``: it must name a
  response of this caller (one store read; a WebSocket connection's own map first), else 404
  ``previous_response_not_found``; a background response still ``queued``/``in_progress`` has no
  output yet: 400 ``previous_response_pending``.
- ``item_reference`` inputs name items of that history by id and are replaced by them; an
  unknown id is 400 ``not_found`` naming ``input[n].id``.
- ``instructions`` are not inherited (the store keeps items only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shim.errors import InvalidRequest, PreviousResponseNotFound
from shim.store.repository import PENDING, ResponseStore, StoredResponse
from shim.translate.history import string_input
from shim.wire import responses as r

__all__ = ["History", "continue_from", "resolve_references"]


@dataclass
class History:
    previous: StoredResponse | None
    items: list[r.ItemParam]  # the items the previous response's turn ended with
    new_input: list[r.ItemParam]  # this turn's input, references resolved

    @property
    def window(self) -> list[r.ItemParam]:
        """Everything the upstream sees: the history, then the new input."""
        return [*self.items, *self.new_input]


async def continue_from(
    store: ResponseStore | None,
    scope: str,
    previous_response_id: str | None,
    input: str | list[r.ItemParam] | None,
    *,
    local: Mapping[str, StoredResponse] | None = None,
) -> History:
    previous: StoredResponse | None = None
    items: list[r.ItemParam] = []
    if previous_response_id is not None:  # "" is an id that names nothing, not "no id"
        if local is not None:
            previous = local.get(previous_response_id)
        if previous is None and store is not None:
            previous = await store.load(scope, previous_response_id)
        if previous is None:
            raise PreviousResponseNotFound(
                f"Previous response with id {previous_response_id!r} not found.",
                param="previous_response_id",
            )
        if previous.resource.status in PENDING:  # a background response has no output yet
            raise InvalidRequest(
                f"Previous response {previous_response_id!r} is still {previous.resource.status}.",
                param="previous_response_id",
                code="previous_response_pending",
            )
        items = previous.history
    return History(previous, items, resolve_references(string_input(input), items))


def resolve_references(items: list[r.ItemParam], history: list[r.ItemParam]) -> list[r.ItemParam]:
    if not any(isinstance(i, r.ItemReferenceParam) for i in items):
        return items
    known = {getattr(i, "id", None): i for i in history if getattr(i, "id", None)}
    out: list[r.ItemParam] = []
    for n, item in enumerate(items):
        if isinstance(item, r.ItemReferenceParam):
            found = known.get(item.id)
            if found is None:
                raise InvalidRequest(
                    f"Item {item.id!r} was not found.", param=f"input[{n}].id", code="not_found"
                )
            out.append(found)
        else:
            out.append(item)
    return out

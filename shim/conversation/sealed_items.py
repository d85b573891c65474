"""Sealed items at the service boundary: seal reasoning on the way out, open it on the way in.

A stateless client (``store: false`` + ``include: ["reasoning.encrypted_content"]``) gets each
reasoning item with ``encrypted_content`` holding the reasoning text, sealed for its scope.
When items come back as input, sealed reasoning is opened into plain ``reasoning_text`` content
and a ``compaction`` item into the summary message from ``mappings/prompts/compaction.toml``,
so the translators only ever see plain items and replay them per the dialect
(``RequestRules.reasoning_replay``). A blob that does not open is a 400
``invalid_encrypted_content`` naming the item; its content is never echoed.

Sealing mutates the writer's reasoning items in place: the same item object appears in
``response.output_item.done`` and in the final snapshot, so it is sealed once for both.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from msgspec import UNSET

from shim.conversation.sealing import Purpose, Sealer, SealError
from shim.errors import InvalidEncryptedContent
from shim.translate.compaction import CompactionConfig, summary_message
from shim.wire import responses as r

__all__ = ["ENCRYPTED_REASONING", "SealedItems", "wants_sealed_reasoning"]

T = TypeVar("T")

ENCRYPTED_REASONING = "reasoning.encrypted_content"


class _Reasoning(msgspec.Struct, frozen=True, omit_defaults=True):
    text: str
    family: str | None = None  # the dialect family that made it (shim/upstream/families.py)


class _Summary(msgspec.Struct, frozen=True):
    summary: str
    # A compaction made by ``context_management`` (turns/context_limits.py) also seals the turn's
    # own items it did not summarise (its last user message and what followed), and is where the
    # window starts: what stands before it in a history is what it summarised. ``None``: an item
    # of ``POST /v1/responses/compact``, whose client replaced its history with the output.
    tail: list[r.ItemParam] | None = None


_KEPT = ("system", "developer")  # what a compaction that starts the window leaves before it
_encode = msgspec.json.Encoder().encode
_reasoning = msgspec.json.Decoder(_Reasoning)
_summary = msgspec.json.Decoder(_Summary)


def _instructs(item: r.ItemParam) -> bool:
    """System and developer messages (and ``additional_tools``): kept before a window's start."""
    return isinstance(item, r.AdditionalToolsItemParam) or (
        isinstance(item, r.MessageItemParam) and item.role in _KEPT
    )


def wants_sealed_reasoning(include: list[str] | None) -> bool:
    return ENCRYPTED_REASONING in (include or ())


def _reasoning_text(item: r.ReasoningBody) -> str:
    if isinstance(item.content, list) and item.content:
        return "".join(part.text for part in item.content)
    return "\n\n".join(part.text for part in item.summary)


# The items ``open_with_origins`` may open (a tuple: no union object built per item).
_SEALABLE = (r.ReasoningItemParam, r.CompactionSummaryItemParam)


class SealedItems:
    """Seals and opens items for one caller scope."""

    def __init__(
        self, sealer: Sealer, scope: str, compaction: CompactionConfig, previous_scopes: tuple[str, ...] = ()
    ) -> None:
        self.sealer = sealer
        self.scope = scope  # seals; with ``previous_scopes`` (the previous secrets' ones) opens
        self.previous_scopes = previous_scopes
        self.compaction = compaction

    # out -----------------------------------------------------------------------

    def seal_reasoning(self, items: list[r.ItemField], family: str | None = None) -> None:
        """``family``: the dialect family of the upstream that made it, sealed with the text so
        that a failover never replays it to another family (shim/upstream/families.py)."""
        for item in items:
            if isinstance(item, r.ReasoningBody) and item.encrypted_content is UNSET:
                payload = _encode(_Reasoning(text=_reasoning_text(item), family=family))
                item.encrypted_content = self.sealer.seal("reasoning", self.scope, payload)

    def seal_event(self, event: r.StreamingEvent, family: str | None = None) -> None:
        if isinstance(event, r.ResponseOutputItemDoneStreamingEvent):
            self.seal_reasoning([event.item], family)
        elif isinstance(
            event,
            r.ResponseCompletedStreamingEvent
            | r.ResponseIncompleteStreamingEvent
            | r.ResponseFailedStreamingEvent,
        ):
            self.seal_reasoning(event.response.output, family)

    def seal_summary(self, summary: str, tail: list[r.ItemParam] | None = None) -> str:
        return self.sealer.seal("compaction", self.scope, _encode(_Summary(summary=summary, tail=tail)))

    # in ------------------------------------------------------------------------

    def open_items(self, items: list[r.ItemParam], first_input: int = 0) -> list[r.ItemParam]:
        """Items with sealed content opened. ``items[first_input:]`` are the request's ``input``
        (for error params); earlier ones came from the stored history.

        A ``context_management`` compaction item starts the window: of what stands before it only
        the system and developer messages stay (instructions, never summarised away), then the
        summary and the items it sealed (the ones its turn kept verbatim), then what follows it.
        The latest such item wins, so a client sending its whole history back (or a
        conversation, or a ``previous_response_id`` chain) is not compacted again."""
        return self.open_with_origins(items, first_input)[0]

    def open_with_origins(
        self, items: list[r.ItemParam], first_input: int = 0
    ) -> tuple[list[r.ItemParam], list[str | None]]:
        """``open_items``, and beside each item it returns the dialect family sealed with its
        reasoning, else ``None`` (shim/upstream/families.py)."""
        if not any(isinstance(i, _SEALABLE) for i in items):
            return items, [None] * len(items)
        out: list[r.ItemParam] = []
        origins: list[str | None] = []
        for n, item in enumerate(items):
            where = f"input[{n - first_input}]" if n >= first_input else "previous_response_id"
            if isinstance(item, r.ReasoningItemParam) and item.encrypted_content:
                opened = self._open("reasoning", item.encrypted_content, where, _reasoning)
                text = opened.text
                out.append(
                    r.ReasoningItemParam(
                        id=item.id,
                        summary=item.summary,
                        content=[r.ReasoningTextContent(text=text)] if text else None,
                        status=item.status,
                    )
                )
                origins.append(opened.family)
            elif isinstance(item, r.CompactionSummaryItemParam):
                sealed = self._open("compaction", item.encrypted_content, where, _summary)
                if sealed.tail is not None:
                    kept = [k for k, i in enumerate(out) if _instructs(i)]
                    out, origins = [out[k] for k in kept], [origins[k] for k in kept]
                out.append(summary_message(sealed.summary, self.compaction, item.id))
                out.extend(sealed.tail or ())
                origins.extend([None] * (1 + len(sealed.tail or ())))
            else:
                out.append(item)
                origins.append(None)
        return out, origins

    def _open(self, purpose: Purpose, blob: str, where: str, decoder: msgspec.json.Decoder[T]) -> T:
        try:
            return decoder.decode(self.sealer.open(purpose, self.scope, blob, self.previous_scopes))
        except (SealError, msgspec.DecodeError):
            raise InvalidEncryptedContent(
                f"The encrypted_content of {where} could not be opened: it was not produced by this "
                "server for this API key, or it was altered.",
                param=f"{where}.encrypted_content" if where != "previous_response_id" else where,
            ) from None

"""``truncation: "auto"``: fit a conversation into the model's context window, sans-IO.

A window is cut into *turns*: each user message opens one, and everything after it (the
assistant's reasoning, messages, tool calls and their outputs) belongs to it until the next user
message. Fitting drops the oldest whole turns and nothing else:

- system and developer messages (and ``additional_tools``) are kept wherever they are: they are
  the operator's and the client's standing orders, not conversation;
- a call is never parted from its output: a turn boundary that falls between a ``call_id``'s
  first and last item is no boundary;
- the last turn's user message and its latest round of calls are never dropped; older rounds of
  the last turn (an agent loop is one long turn) go after every older turn. If what is left
  does not fit, the upstream's ``context_length_exceeded`` stands.

``Truncation`` holds one turn's state. ``fit`` trims before anything is sent, by an estimate
against the route's ``context_window``; ``shrink`` answers an upstream overflow by dropping at
least one more turn (and enough for the estimate to fall by a quarter), a bounded number of
times. The estimate is deliberately rough (bytes / 3, a fixed guess per image or file): no
tokenizer is shipped for every model, so it errs towards trimming early, and the upstream's own
answer is the final word.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from shim.translate.tool_rounds import OUTPUT_ITEMS
from shim.wire import responses as r

__all__ = ["BYTES_PER_TOKEN", "MEDIA_TOKENS", "Truncation", "estimate_tokens", "turn_spans"]

BYTES_PER_TOKEN = 3  # English runs near 4 bytes per token; 3 overestimates, so trimming errs early
MEDIA_TOKENS = 1024  # an image or file part, whatever its encoded size (a data URL is no measure)
_PER_ITEM = 4  # role and framing tokens every message costs in a chat template
_encoder = msgspec.json.Encoder()


def estimate_tokens(items: Sequence[r.ItemParam]) -> int:
    return sum(_item_tokens(item) for item in items)


def _item_tokens(item: r.ItemParam) -> int:
    if isinstance(item, r.MessageItemParam) and not isinstance(item.content, str):
        size = 0
        media = 0
        for part in item.content:
            if isinstance(part, r.InputTextContent | r.OutputTextContent):
                size += len(part.text.encode())
            elif isinstance(part, r.InputImageContent | r.InputFileContent):
                media += MEDIA_TOKENS
            else:
                size += len(_encoder.encode(part))
        return _PER_ITEM + size // BYTES_PER_TOKEN + media
    return _PER_ITEM + len(_encoder.encode(item)) // BYTES_PER_TOKEN


def _pinned(item: r.ItemParam) -> bool:
    if isinstance(item, r.AdditionalToolsItemParam):
        return True
    return isinstance(item, r.MessageItemParam) and item.role in ("system", "developer")


def turn_spans(items: Sequence[r.ItemParam]) -> list[tuple[int, int]]:
    """The droppable turns as ``[start, end)`` ranges, oldest first; the last turn is not among
    them. Items before the first user message that are not pinned form a turn of their own."""
    starts = [
        n for n, item in enumerate(items) if isinstance(item, r.MessageItemParam) and item.role == "user"
    ]
    if not starts:
        return []
    # a boundary inside a call's span (its first to its last item) would part it from its output
    spans_of_calls: dict[str, tuple[int, int]] = {}
    for n, item in enumerate(items):
        call_id = getattr(item, "call_id", None)
        if isinstance(call_id, str):
            first, _ = spans_of_calls.get(call_id, (n, n))
            spans_of_calls[call_id] = (first, n)
    boundaries = [b for b in starts if not any(first < b <= last for first, last in spans_of_calls.values())]
    if boundaries and boundaries[0] != 0 and any(not _pinned(i) for i in items[: boundaries[0]]):
        boundaries.insert(0, 0)
    spans = list(itertools.pairwise(boundaries))
    # An agent loop is one long turn (one user message, then rounds of calls and outputs): after
    # every older turn, its older rounds go too, oldest first; the user message and the latest
    # round stay. A round starts where an item that is no output follows an output.
    last = boundaries[-1] if boundaries else 0
    rounds = [last + 1] + [
        n
        for n in range(last + 2, len(items))
        if _is_output(items[n - 1])
        and not _is_output(items[n])
        and not any(first < n <= end for first, end in spans_of_calls.values())
    ]
    return spans + list(itertools.pairwise(rounds))


def _is_output(item: r.ItemParam) -> bool:
    return isinstance(item, OUTPUT_ITEMS)


@dataclass
class Truncation:
    """One turn's fitting. ``items`` is the whole window (sealed items already opened);
    ``overhead`` the estimate of what is sent besides them (instructions, tools) and the output
    the request reserves; ``window`` the route's ``context_window`` (``None``: unknown)."""

    items: list[r.ItemParam]
    window: int | None = None
    overhead: int = 0
    retries: int = 3
    dropped_turns: int = 0
    attempts: int = 0
    _spans: list[tuple[int, int]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._spans = turn_spans(self.items)

    def current(self) -> list[r.ItemParam]:
        """The window with the first ``dropped_turns`` turns left out (pinned items stay)."""
        if not self.dropped_turns:
            return list(self.items)
        gone: set[int] = set()
        for start, end in self._spans[: self.dropped_turns]:
            gone.update(n for n in range(start, end) if not _pinned(self.items[n]))
        return [item for n, item in enumerate(self.items) if n not in gone]

    def fit(self) -> list[r.ItemParam]:
        """Before the first request: drop the oldest turns until the estimate fits the window."""
        if self.window is not None:
            budget = self.window - self.overhead
            while self.dropped_turns < len(self._spans) and estimate_tokens(self.current()) > budget:
                self.dropped_turns += 1
        return self.current()

    def shrink(self) -> list[r.ItemParam] | None:
        """After the upstream said the input is too long: a smaller window, or ``None`` when the
        retries are spent or only the last turn is left."""
        if self.attempts >= self.retries or self.dropped_turns >= len(self._spans):
            return None
        self.attempts += 1
        target = estimate_tokens(self.current()) * 3 // 4
        self.dropped_turns += 1
        while self.dropped_turns < len(self._spans) and estimate_tokens(self.current()) > target:
            self.dropped_turns += 1
        return self.current()

"""The small union of semantic stream deltas every reader produces and every writer consumes.

Readers (Chat chunks, Chat completions, Open Responses events and resources) absorb all vendor
quirks and emit these; writers (Open Responses events, Chat chunks) own every lifecycle rule.
Non-streaming bodies are read into the same deltas, so both paths share one writer.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from shim.errors import ShimError

__all__ = [
    "Delta",
    "ErrorDelta",
    "FinishDelta",
    "FinishReason",
    "MetaDelta",
    "ReasoningDelta",
    "ReasoningEncryptedDelta",
    "ReasoningSummaryDelta",
    "RefusalDelta",
    "TextDelta",
    "TokenLogprob",
    "ToolCallArgsDelta",
    "ToolCallStartDelta",
    "TopLogprob",
    "UsageDelta",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class TopLogprob(msgspec.Struct, frozen=True):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(msgspec.Struct, frozen=True):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = []


class MetaDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="meta"):
    """What the upstream says about itself: its model name and its own id."""

    model: str | None = None
    upstream_id: str | None = None
    created: int | None = None


class TextDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="text"):
    text: str
    logprobs: list[TokenLogprob] | None = None


class RefusalDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="refusal"):
    text: str


class ReasoningDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="reasoning"):
    """Raw reasoning text (``reasoning_content``, ``reasoning``, ``<think>`` text)."""

    text: str


class ReasoningSummaryDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="reasoning_summary"):
    text: str
    summary_index: int = 0


class ReasoningEncryptedDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="reasoning_encrypted"):
    """An opaque reasoning blob (OpenAI ``encrypted_content``) for the current reasoning item."""

    encrypted_content: str


class ToolCallStartDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="tool_call_start"):
    """A new tool call; ``index`` is the upstream's key for the call within this turn."""

    index: int
    call_id: str
    name: str


class ToolCallArgsDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="tool_call_args"):
    index: int
    arguments: str


class UsageDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="usage"):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class FinishDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="finish"):
    reason: FinishReason


class ErrorDelta(msgspec.Struct, frozen=True, tag_field="kind", tag="error"):
    message: str
    type: str = "server_error"
    code: str | None = None
    param: str | None = None

    @classmethod
    def of(cls, error: ShimError) -> ErrorDelta:
        """An error of the one tree (``shim.errors``) as the delta that ends a stream with it."""
        return cls(error.message, code=error.code)


Delta = (
    MetaDelta
    | TextDelta
    | RefusalDelta
    | ReasoningDelta
    | ReasoningSummaryDelta
    | ReasoningEncryptedDelta
    | ToolCallStartDelta
    | ToolCallArgsDelta
    | UsageDelta
    | FinishDelta
    | ErrorDelta
)

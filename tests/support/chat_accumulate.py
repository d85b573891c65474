"""Fold a Chat Completions chunk stream into the ``ChatCompletion`` a non-streaming call returns.

Why: "non-streaming is a stream of one" is a claim the fixture tests check for every recorded
stream. Folding the chunks back into one completion and translating that must give the same
response as translating the stream. It is also what a server needs when a client asks for a
JSON answer and only a streaming upstream is at hand.

Rules, after openai-python's ``ChatCompletionStreamState``:

- ``id``, ``model``, ``created``, ``system_fingerprint`` and ``service_tier``: the first
  non-empty value wins (Azure's first chunk carries only ``prompt_filter_results`` and empty
  ids).
- Per choice ``index``: ``content``, ``refusal``, ``reasoning_content`` and ``reasoning`` are
  concatenated; ``reasoning_details`` blocks and logprob entries are appended in order;
  ``finish_reason`` is the last non-null one.
- Tool calls are merged by their ``index``: the first ``id``, ``type`` and ``name`` seen win,
  ``arguments`` are concatenated. A fragment without ``index`` follows the readers' sequential
  policy: one carrying an ``id`` or a ``name`` starts the next call, anything else continues the
  last one. The legacy ``function_call`` is merged the same way.
- ``usage``: the last chunk that carries one (the trailing usage-only chunk, or Mistral's last
  chunk).

Fields never seen stay absent (``UNSET``) or ``None``, as in a real body.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shim.wire import chat as c

__all__ = ["accumulate"]


class _Call:
    __slots__ = ("args", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.args: list[str] = []

    def merge(self, call: c.ChoiceDeltaToolCall) -> None:
        self.id = self.id or call.id
        self.type = self.type or call.type
        fn = call.function
        if fn is not None:
            self.name = self.name or fn.name
            if fn.arguments:
                self.args.append(fn.arguments)

    def build(self) -> c.ChatCompletionMessageToolCall:
        return c.ChatCompletionMessageToolCall(
            id=self.id,
            type=self.type or "function",
            function=c.Function(name=self.name or "", arguments="".join(self.args)),
        )


class _Choice:
    __slots__ = (
        "calls",
        "content",
        "finish_reason",
        "function_call",
        "last_index",
        "logprobs",
        "reasoning",
        "reasoning_content",
        "reasoning_details",
        "refusal",
        "refusal_logprobs",
        "role",
    )

    def __init__(self) -> None:
        self.role: str | None = None
        self.content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.reasoning_content: list[str] | None = None
        self.reasoning: list[str] | None = None
        self.reasoning_details: list[dict[str, Any]] | None = None
        self.calls: dict[int, _Call] = {}
        self.last_index = -1
        self.function_call: _Call | None = None
        self.logprobs: list[c.ChatCompletionTokenLogprob] | None = None
        self.refusal_logprobs: list[c.ChatCompletionTokenLogprob] | None = None
        self.finish_reason: str | None = None

    def merge(self, choice: c.ChunkChoice) -> None:
        delta = choice.delta
        self.role = self.role or delta.role
        self.content = _append(self.content, delta.content)
        self.refusal = _append(self.refusal, delta.refusal)
        self.reasoning_content = _append(self.reasoning_content, delta.reasoning_content)
        self.reasoning = _append(self.reasoning, delta.reasoning)
        if delta.reasoning_details:
            self.reasoning_details = [*(self.reasoning_details or []), *delta.reasoning_details]
        for call in delta.tool_calls or ():
            index = call.index
            if index is None:
                starts = call.id is not None or (call.function is not None and call.function.name)
                index = self.last_index + 1 if starts or self.last_index < 0 else self.last_index
            self.last_index = index
            self.calls.setdefault(index, _Call()).merge(call)
        if delta.function_call is not None:
            if self.function_call is None:
                self.function_call = _Call()
            fn = delta.function_call
            self.function_call.merge(
                c.ChoiceDeltaToolCall(
                    function=c.ChoiceDeltaToolCallFunction(name=fn.name, arguments=fn.arguments)
                )
            )
        if choice.logprobs is not None:
            if choice.logprobs.content:
                self.logprobs = [*(self.logprobs or []), *choice.logprobs.content]
            if choice.logprobs.refusal:
                self.refusal_logprobs = [*(self.refusal_logprobs or []), *choice.logprobs.refusal]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason

    def build(self, index: int) -> c.Choice:
        message = c.ChatCompletionMessage(
            role=self.role or "assistant",
            content=_join(self.content),
            refusal=_join(self.refusal),
        )
        if self.calls:
            message.tool_calls = [self.calls[i].build() for i in sorted(self.calls)]
        if self.function_call is not None:
            fn = self.function_call
            message.function_call = c.Function(name=fn.name or "", arguments="".join(fn.args))
        if self.reasoning_content is not None:
            message.reasoning_content = "".join(self.reasoning_content)
        if self.reasoning is not None:
            message.reasoning = "".join(self.reasoning)
        if self.reasoning_details is not None:
            message.reasoning_details = self.reasoning_details
        logprobs = None
        if self.logprobs is not None or self.refusal_logprobs is not None:
            logprobs = c.ChoiceLogprobs(content=self.logprobs, refusal=self.refusal_logprobs)
        return c.Choice(index=index, message=message, logprobs=logprobs, finish_reason=self.finish_reason)


def _append(parts: list[str] | None, value: str | None) -> list[str] | None:
    if value is None:
        return parts
    if parts is None:
        return [value]
    parts.append(value)
    return parts


def _join(parts: list[str] | None) -> str | None:
    return None if parts is None else "".join(parts)


def accumulate(chunks: Iterable[c.ChatCompletionChunk]) -> c.ChatCompletion:
    """The whole completion that ``chunks`` (one stream, in order) add up to."""
    out = c.ChatCompletion(object="chat.completion")
    choices: dict[int, _Choice] = {}
    for chunk in chunks:
        out.id = out.id or chunk.id
        out.model = out.model or chunk.model
        out.created = out.created or chunk.created
        out.system_fingerprint = out.system_fingerprint or chunk.system_fingerprint
        if out.service_tier is None and isinstance(chunk.service_tier, str):
            out.service_tier = chunk.service_tier
        for choice in chunk.choices:
            choices.setdefault(choice.index, _Choice()).merge(choice)
        if isinstance(chunk.usage, c.CompletionUsage):
            out.usage = chunk.usage
    out.choices = [choices[i].build(i) for i in sorted(choices)]
    return out

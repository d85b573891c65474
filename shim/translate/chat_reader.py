"""Chat Completions chunks and completions (from a Chat upstream) → deltas.

All vendor quirks are absorbed here, steered by the dialect's ``ResponseRules``: where raw
reasoning arrives (``reasoning_content``, ``reasoning``, ``<think>`` tags in content), tool calls
without ``index``, ids left out, usage in a trailing chunk with no choices. Only choice 0 is
read: Open Responses has one output per response.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import msgspec

from shim.core.deltas import (
    Delta,
    ErrorDelta,
    FinishDelta,
    FinishReason,
    MetaDelta,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    TokenLogprob,
    ToolCallArgsDelta,
    ToolCallStartDelta,
    TopLogprob,
    UsageDelta,
)
from shim.dialects.model import ResponseRules
from shim.dialects.think import ThinkSplitter
from shim.ids import IdFactory
from shim.translate.chunk_template import TextTemplate, is_plain, learn
from shim.translate.json_closing import closing_suffix
from shim.wire import chat as c

__all__ = ["ChatStreamReader", "finish_reason", "read_completion", "usage_delta"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
}


class _Chunk(c.ChatCompletionChunk):
    """A chunk that also notes the top-level keys an in-band error body is recognised by.

    ``c.decode_chunk_or_error`` first scans every payload for ``"error"`` (about a tenth of the
    reader's time on a text chunk). Decoding these few keys too (``Raw``: not parsed) tells us in
    the same pass that ``decode_error`` could not match, so the scan is skipped.
    """

    error: msgspec.Raw | None = None
    detail: msgspec.Raw | None = None
    message: msgspec.Raw | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_decode_str = msgspec.json.Decoder(str).decode
# Templates a reader may learn (``chunk_template``): a stream whose chunks never repeat their
# layout (a per-chunk nonce) stops paying for the attempts after these.
_LEARNS = 4


def finish_reason(value: str) -> FinishReason:
    """Vendors add their own (``eos``, ``end_turn``, ``max_tokens``); unknown ones mean stop."""
    if value in _FINISH:
        return _FINISH[value]
    return "length" if value in ("max_tokens", "max_output_tokens") else "stop"


def usage_delta(usage: c.CompletionUsage) -> UsageDelta:
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    return UsageDelta(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=(prompt.cached_tokens or 0) if prompt else 0,
        reasoning_tokens=(completion.reasoning_tokens or 0) if completion else 0,
    )


def _logprobs(items: list[c.ChatCompletionTokenLogprob] | None) -> list[TokenLogprob] | None:
    if not items:
        return None
    return [
        TokenLogprob(
            token=t.token,
            logprob=t.logprob,
            bytes=t.bytes,
            top_logprobs=[TopLogprob(x.token, x.logprob, x.bytes) for x in t.top_logprobs],
        )
        for t in items
    ]


@functools.lru_cache(maxsize=64)
def _delta_fields(names: tuple[str, ...]) -> tuple[str, ...]:
    """Only real ``ChoiceDelta`` fields can ever hold a value, so the others are dropped; once
    per dialect, not per stream (issue 18)."""
    return tuple(f for f in names if f in c.ChoiceDelta.__struct_fields__)


class ChatStreamReader:
    """Feed decoded chunks (or SSE ``data`` strings); ``finish()`` flushes held-back text."""

    def __init__(self, rules: ResponseRules, ids: IdFactory) -> None:
        self._fields = _delta_fields(rules.reasoning_fields)
        self._ids = ids
        self._think = (
            ThinkSplitter(
                rules.think_open,
                rules.think_close,
                start_inside=rules.think_start_inside,
                unclosed=rules.think_unclosed,
            )
            if rules.think_tags
            else None
        )
        self._meta_sent = False
        self._calls: dict[int, bool] = {}  # upstream index → started
        self._last_index = -1
        self._finish: FinishReason | None = None
        self.saw_done = False
        self.saw_usage = False
        # Arguments kept per call only to mend them at the end (close_truncated_arguments).
        self._args: dict[int, list[str]] | None = {} if rules.close_truncated_arguments else None
        self._template: TextTemplate | None = None  # the layout of this stream's text chunks
        self._learns = _LEARNS

    @property
    def saw_finish(self) -> bool:
        return self._finish is not None

    def text_of(self, data: str) -> str | None:
        """The text of a chunk ``feed_data`` would read as just that text (``""``: nothing),
        laid out like the learnt template, with no ``<think>`` splitting; otherwise ``None``
        (give it to ``feed_data``). Nothing is noted either way."""
        template = self._template
        if template is None or self._think is not None:
            return None
        head, tail = template.head, template.tail
        if data.startswith(head) and data.endswith(tail):
            try:
                return _decode_str(data[len(head) : len(data) - len(tail)])
            except msgspec.DecodeError:
                return None
        return None

    def feed_data(self, data: str) -> list[Delta]:
        """One SSE ``data`` field: a chunk, ``[DONE]``, or an error object mid-stream."""
        template = self._template
        if template is not None and data.startswith(template.head) and data.endswith(template.tail):
            # The hot path: a text chunk laid out like the one the template was learnt from.
            try:
                text = _decode_str(data[len(template.head) : len(data) - len(template.tail)])
            except msgspec.DecodeError:
                pass  # not one JSON string there: the long way
            else:
                if not text:
                    return []
                if self._think is None:
                    return [TextDelta(text)]
                out: list[Delta] = []
                self._content(text, out)
                return out
        if data == "[DONE]":
            self.saw_done = True
            return []
        try:
            chunk: _Chunk | None = _decode_chunk(data)
        except msgspec.DecodeError:
            chunk = None
        if (  # none of the keys an error body is recognised by (see ``_Chunk``)
            chunk is not None
            and chunk.error is None
            and chunk.detail is None
            and chunk.message is None
            and chunk.object != "error"
        ):
            if self._learns and is_plain(chunk, self._fields):
                self._learns -= 1
                self._template = learn(data, chunk, _decode_chunk) or template
            return self.feed(chunk)
        parsed = c.decode_chunk_or_error(data)  # the exact rules, for anything unusual
        if isinstance(parsed, c.ChatErrorBody):
            return [ErrorDelta(message=parsed.message, type=parsed.type or "server_error", code=parsed.code)]
        return self.feed(parsed)

    def feed(self, chunk: c.ChatCompletionChunk) -> list[Delta]:
        out: list[Delta] = []
        if not self._meta_sent:
            self._meta_sent = True
            out.append(
                MetaDelta(
                    model=chunk.model or None, upstream_id=chunk.id or None, created=chunk.created or None
                )
            )
        # The hot path of every stream: plain local lookups, no helper call for a plain text delta.
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            for name in self._fields:  # the first non-empty reasoning field wins
                value = getattr(delta, name)
                if value and isinstance(value, str):
                    out.append(ReasoningDelta(value))
                    break
            text = delta.content
            if text:
                if self._think is None:
                    lp = _logprobs(choice.logprobs.content) if choice.logprobs else None
                    out.append(TextDelta(text, lp))
                else:
                    self._content(text, out)
            if delta.refusal:
                out.append(RefusalDelta(delta.refusal))
            if delta.tool_calls:
                self._tool_calls(delta.tool_calls, out)
            elif delta.function_call is not None:
                self._legacy_function_call(delta.function_call, out)
            if choice.finish_reason:
                self._finish = finish_reason(choice.finish_reason)
        if isinstance(chunk.usage, c.CompletionUsage):
            self.saw_usage = True
            out.append(usage_delta(chunk.usage))
        return out

    def finish(self) -> list[Delta]:
        """End of upstream stream: flush the splitter and report how it finished."""
        out: list[Delta] = []
        if self._think is not None:
            for kind, text in self._think.finish():
                out.append(ReasoningDelta(text) if kind == "reasoning" else TextDelta(text))
        if self._args and self._finish == "tool_calls":
            for index, parts in self._args.items():
                suffix = closing_suffix("".join(parts))
                if suffix:
                    out.append(ToolCallArgsDelta(index, suffix))
        if self._finish is not None:
            out.append(FinishDelta(self._finish))
        elif self._calls:
            out.append(FinishDelta("tool_calls"))
        else:
            out.append(FinishDelta("stop"))
        return out

    # ------------------------------------------------------------------ parts

    def _content(self, text: str, out: list[Delta]) -> None:
        """Content through the ``<think>`` splitter (logprobs cannot follow a re-split text)."""
        assert self._think is not None
        for kind, segment in self._think.feed(text):
            out.append(ReasoningDelta(segment) if kind == "reasoning" else TextDelta(segment))

    def _tool_calls(self, calls: list[c.ChoiceDeltaToolCall], out: list[Delta]) -> None:
        for call in calls:
            index = call.index
            if index is None:
                # Sequential policy: a call carrying an id or a name starts a new call.
                starts = call.id is not None or (call.function is not None and call.function.name)
                index = self._last_index + 1 if starts or self._last_index < 0 else self._last_index
            self._last_index = index
            fn = call.function
            if index not in self._calls:
                self._calls[index] = True
                name = (fn.name if fn else None) or ""
                out.append(ToolCallStartDelta(index, call.id or self._ids("call"), name))
            if fn is not None and fn.arguments:
                out.append(ToolCallArgsDelta(index, fn.arguments))
                if self._args is not None:
                    self._args.setdefault(index, []).append(fn.arguments)

    def _legacy_function_call(self, fn: c.ChoiceDeltaFunctionCall, out: list[Delta]) -> None:
        if 0 not in self._calls:
            self._calls[0] = True
            self._last_index = 0
            out.append(ToolCallStartDelta(0, self._ids("call"), fn.name or ""))
        if fn.arguments:
            out.append(ToolCallArgsDelta(0, fn.arguments))
            if self._args is not None:
                self._args.setdefault(0, []).append(fn.arguments)


def read_completion(completion: c.ChatCompletion, rules: ResponseRules, ids: IdFactory) -> list[Delta]:
    """A whole (non-streaming) completion as the deltas of a stream of one chunk."""
    chunk = c.ChatCompletionChunk(id=completion.id, created=completion.created, model=completion.model)
    for choice in completion.choices:
        msg = choice.message
        calls: list[c.ChoiceDeltaToolCall] | None = None
        if msg.tool_calls:
            calls = []
            for i, tc in enumerate(msg.tool_calls):
                fn = tc.function or c.Function(name="")
                calls.append(
                    c.ChoiceDeltaToolCall(
                        index=i,
                        id=tc.id,
                        type="function",
                        function=c.ChoiceDeltaToolCallFunction(name=fn.name, arguments=fn.arguments),
                    )
                )
        delta = c.ChoiceDelta(
            role="assistant",
            content=msg.content,
            refusal=msg.refusal,
            tool_calls=calls,
            function_call=(
                c.ChoiceDeltaFunctionCall(name=msg.function_call.name, arguments=msg.function_call.arguments)
                if isinstance(msg.function_call, c.Function)
                else None
            ),
            reasoning_content=msg.reasoning_content if isinstance(msg.reasoning_content, str) else None,
            reasoning=msg.reasoning if isinstance(msg.reasoning, str) else None,
        )
        chunk.choices.append(
            c.ChunkChoice(
                index=choice.index, delta=delta, logprobs=choice.logprobs, finish_reason=choice.finish_reason
            )
        )
    if completion.usage is not None:
        chunk.usage = completion.usage
    reader = ChatStreamReader(rules, ids)
    return reader.feed(chunk) + reader.finish()


def read_all(chunks: Iterable[c.ChatCompletionChunk], rules: ResponseRules, ids: IdFactory) -> list[Delta]:
    reader = ChatStreamReader(rules, ids)
    out: list[Delta] = []
    for chunk in chunks:
        out.extend(reader.feed(chunk))
    return out + reader.finish()

"""Deltas → Chat Completions chunks and the final ``ChatCompletion``.

Every lifecycle rule of a Chat stream lives here, matching OpenAI's own streams:

* the first chunk is ``delta: {"role": "assistant", "content": "", "refusal": null}``;
* text goes to ``delta.content``, refusals to ``delta.refusal``, reasoning to
  ``delta.reasoning_content`` or ``delta.reasoning`` (vendor fields), or into ``content``
  wrapped in ``<think>…</think>`` (the tag opens before the first reasoning text and closes
  before whatever comes next: text, a refusal, a tool call or the end);
* tool calls get distinct ``index`` values 0, 1, 2… in order of first appearance, whatever the
  upstream's own keys (its output indexes count reasoning and message items too); the first
  chunk of a call carries ``id``, ``type``, ``name`` and ``arguments: ""``, later ones only
  ``{index, function: {arguments}}``;
* the last choice chunk has an empty delta and the ``finish_reason``; with ``include_usage``
  every chunk has ``usage: null`` and a final chunk with ``choices: []`` carries the usage;
* an error ends the stream with no finish chunk: the IO layer sends ``error_chunk_bytes``.

Reasoning summaries are reasoning too (parts joined with a blank line). Encrypted reasoning is
never shown: it is kept in ``encrypted_reasoning`` for the server to remember.

Non-streaming is a stream of one: ``completion`` is built from the same state the chunks were
written from, so the two cannot disagree. The writer knows no vendor names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

import msgspec
from msgspec import UNSET

from shim.core.deltas import (
    Delta,
    ErrorDelta,
    FinishDelta,
    FinishReason,
    MetaDelta,
    ReasoningDelta,
    ReasoningEncryptedDelta,
    ReasoningSummaryDelta,
    RefusalDelta,
    TextDelta,
    TokenLogprob,
    ToolCallArgsDelta,
    ToolCallStartDelta,
    UsageDelta,
)
from shim.translate.reverse_tools import CustomCallStartDelta
from shim.wire import chat as c

__all__ = [
    "THINK_CLOSE",
    "THINK_OPEN",
    "ChatStreamWriter",
    "ReasoningMode",
    "TextFrame",
    "error_chunk_bytes",
    "usage_body",
]

ReasoningMode = Literal["reasoning_content", "reasoning", "think_tags"]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_encoder = msgspec.json.Encoder()
_PROBE = "\x00shim-text-probe\x00"
_PROBE_JSON = _encoder.encode(_PROBE).decode()


class TextFrame(NamedTuple):
    """A text chunk's JSON is ``head`` + the text as a JSON string + ``tail``."""

    head: str
    tail: str
    model: str  # the model name in ``head``
    content: list[str]  # the writer's content: append each text written


class _OpeningDelta(c.ChoiceDelta):
    """The first delta. ``refusal`` defaults to ``""`` here only so that ``None`` is *written*
    (``"refusal": null``), as OpenAI's first chunk has it; ``ChoiceDelta`` omits ``None``."""

    refusal: str | None = ""


class _Call:
    __slots__ = ("args", "call_id", "custom", "index", "name")

    def __init__(self, index: int, call_id: str, name: str, custom: bool = False) -> None:
        self.index = index
        self.call_id = call_id
        self.name = name
        self.args: list[str] = []  # a custom call's input
        self.custom = custom


def _logprobs(items: list[TokenLogprob]) -> list[c.ChatCompletionTokenLogprob]:
    return [
        c.ChatCompletionTokenLogprob(
            token=t.token,
            logprob=t.logprob,
            bytes=t.bytes,
            top_logprobs=[
                c.TopLogprob(token=x.token, logprob=x.logprob, bytes=x.bytes) for x in t.top_logprobs
            ],
        )
        for t in items
    ]


def usage_body(u: UsageDelta) -> c.CompletionUsage:
    """Chat's usage object for a usage delta (audio and prediction counts are always 0 here)."""
    return c.CompletionUsage(
        prompt_tokens=u.input_tokens,
        completion_tokens=u.output_tokens,
        total_tokens=u.input_tokens + u.output_tokens,
        prompt_tokens_details=c.PromptTokensDetails(cached_tokens=u.cached_tokens, audio_tokens=0),
        completion_tokens_details=c.CompletionTokensDetails(
            reasoning_tokens=u.reasoning_tokens,
            audio_tokens=0,
            accepted_prediction_tokens=0,
            rejected_prediction_tokens=0,
        ),
    )


def error_chunk_bytes(error: ErrorDelta) -> bytes:
    """OpenAI's error envelope, ``{"error": {"message", "type", "param", "code"}}``, as JSON."""
    body = c.ChatErrorBody(message=error.message, type=error.type, param=error.param, code=error.code)
    return _encoder.encode(c.ChatErrorResponse(error=body))


class ChatStreamWriter:
    """Feed deltas, get chunks; ``finish()`` last, then read ``completion`` (or ``error``).

    ``model`` ``None`` takes the upstream's model name from its ``MetaDelta``. ``start()`` sends
    the opening chunk at once (the IO layer may call it before the upstream answers); otherwise
    the first output sends it.
    """

    def __init__(
        self,
        *,
        completion_id: str,
        created: int,
        model: str | None,
        reasoning: ReasoningMode = "reasoning_content",
        include_usage: bool = False,
    ) -> None:
        self.completion_id = completion_id
        self.created = created
        self._model = model
        self._mode: ReasoningMode = reasoning
        self._include_usage = include_usage
        self._started = False
        self._finished = False
        self._content: list[str] = []  # with the think tags in "think_tags" mode
        self._refusal: list[str] = []
        self._reasoning: list[str] = []  # empty in "think_tags" mode (the text is in the content)
        self._has_reasoning = False
        self._reasoning_key: tuple[str, int] | None = None  # the part the last reasoning text was in
        self._in_think = False
        self._calls: dict[int, _Call] = {}  # upstream key → call, in order of first appearance
        self._logprobs: list[c.ChatCompletionTokenLogprob] = []
        self._finish: FinishReason | None = None
        self._usage: UsageDelta | None = None
        self.error: ErrorDelta | None = None
        self.encrypted_reasoning: list[str] = []
        self.meta: MetaDelta | None = None
        self._frame: TextFrame | None = None  # the last frame learnt
        # The frame ``text_frame`` returned, while it holds: every other public method clears
        # it (each may change what a text chunk looks like, or whether one may be written).
        self.live_frame: TextFrame | None = None

    @property
    def model(self) -> str:
        if self._model is not None:
            return self._model
        return (self.meta.model if self.meta is not None else None) or ""

    # ------------------------------------------------------------------ public API

    def start(self) -> list[c.ChatCompletionChunk]:
        """The opening chunk, once; nothing after an error or the end.

        With ``model=None`` it waits for the upstream's ``MetaDelta`` (or the first output), so
        every chunk names the same model.
        """
        self.live_frame = None
        if self._started or self._finished or self.error is not None:
            return []
        if self._model is None and self.meta is None:
            return []
        return self._opening()

    def feed(self, delta: Delta) -> list[c.ChatCompletionChunk]:
        self.live_frame = None
        if self._finished or self.error is not None:
            return []
        if isinstance(delta, TextDelta):
            out: list[c.ChatCompletionChunk] = []
            self._text(delta, out)
            return out
        if isinstance(delta, ReasoningDelta):
            return self._reasoning_text(delta.text, ("raw", 0))
        if isinstance(delta, ReasoningSummaryDelta):
            return self._reasoning_text(delta.text, ("summary", delta.summary_index))
        if isinstance(delta, ToolCallArgsDelta):
            return self._call_args(delta)
        if isinstance(delta, ToolCallStartDelta):
            return self._call_start(delta)
        if isinstance(delta, RefusalDelta):
            return self._refusal_text(delta.text)
        if isinstance(delta, ReasoningEncryptedDelta):
            self.encrypted_reasoning.append(delta.encrypted_content)
        elif isinstance(delta, UsageDelta):
            self._usage = delta
        elif isinstance(delta, FinishDelta):
            if delta.reason == "error":
                self.error = ErrorDelta(message="The upstream stopped with an error.", code="upstream_error")
            else:
                self._finish = delta.reason
        elif isinstance(delta, ErrorDelta):
            self.error = delta
        elif isinstance(delta, MetaDelta):
            self.meta = delta
        return []

    def feed_all(
        self, deltas: Iterable[Delta], out: list[c.ChatCompletionChunk] | None = None
    ) -> list[c.ChatCompletionChunk]:
        """The chunks for ``deltas``, appended to ``out`` when given."""
        self.live_frame = None
        if out is None:
            out = []
        feed = self.feed
        text_chunk = self.text_chunk
        for delta in deltas:
            # Text is most of any stream: the plain case in ``text_chunk``.
            if type(delta) is TextDelta:
                text = delta.text
                chunk = text_chunk(text) if text and not delta.logprobs else None
                if chunk is not None:
                    out.append(chunk)
                elif not self._finished and self.error is None:  # ``feed``'s guard
                    self._text(delta, out)
            else:
                out += feed(delta)
        return out

    def text_chunk(self, text: str) -> c.ChatCompletionChunk | None:
        """The chunk for a non-empty text without logprobs, noted as ``feed`` would, when the
        opening chunk is out, no think tag is open and the stream has not ended; otherwise
        ``None`` and nothing noted (give it to ``feed`` or ``feed_all``)."""
        self.live_frame = None
        if not self._started or self._in_think or self._finished or self.error is not None:
            return None
        self._reasoning_key = None
        self._content.append(text)
        model = self._model
        return c.ChatCompletionChunk(
            id=self.completion_id,
            created=self.created,
            model=model if model is not None else self.model,
            choices=[c.ChunkChoice(delta=c.ChoiceDelta(content=text))],
            usage=None if self._include_usage else UNSET,
        )

    def text_frame(self) -> TextFrame | None:
        """For text written as JSON without a chunk struct (issue 18): ``None`` when
        ``text_chunk`` would return ``None``. Otherwise the frame of the chunk ``text_chunk``
        would write now, whatever the text, with the writer noted as ``text_chunk`` notes it
        before a text; append each text written to the frame's ``content`` (the completion's).
        Valid until anything else is called on the writer: meanwhile it is ``live_frame``."""
        self.live_frame = None
        if not self._started or self._in_think or self._finished or self.error is not None:
            return None
        model = self._model
        if model is None:
            model = self.model
        frame = self._frame
        if frame is None or frame.model != model:
            frame = self._frame = self._learn_frame(model)
            if frame is None:
                return None
        self._reasoning_key = None
        self.live_frame = frame
        return frame

    def _learn_frame(self, model: str) -> TextFrame | None:
        # The chunk is encoded once with a probe for its text: a JSON string can be swapped for
        # another without changing anything around it. ``None`` if the probe is there twice (a
        # model named after it).
        chunk = c.ChatCompletionChunk(
            id=self.completion_id,
            created=self.created,
            model=model,
            choices=[c.ChunkChoice(delta=c.ChoiceDelta(content=_PROBE))],
            usage=None if self._include_usage else UNSET,
        )
        head, found, tail = _encoder.encode(chunk).decode().partition(_PROBE_JSON)
        if not found or _PROBE_JSON in tail:
            return None
        return TextFrame(head, tail, model, self._content)

    def finish(self) -> list[c.ChatCompletionChunk]:
        """The finish chunk (and the usage chunk); nothing after an error. Idempotent."""
        self.live_frame = None
        if self._finished or self.error is not None:
            self._finished = True
            return []
        out = self._lead()
        self._finished = True
        out.append(self._chunk(c.ChoiceDelta(), finish=self.finish_reason))
        if self._include_usage and self._usage is not None:
            out.append(
                c.ChatCompletionChunk(
                    id=self.completion_id,
                    created=self.created,
                    model=self.model,
                    choices=[],
                    usage=usage_body(self._usage or UsageDelta()),
                )
            )
        return out

    def fail(self, error: ErrorDelta) -> list[c.ChatCompletionChunk]:
        """An error from outside the stream (upstream dropped, timeout): no finish chunk follows."""
        self.live_frame = None
        if self.error is None and not self._finished:
            self.error = error
        self._finished = True
        return []

    @property
    def finish_reason(self) -> Literal["stop", "length", "tool_calls", "content_filter"]:
        reason = self._finish
        if reason == "length" or reason == "content_filter":
            return reason
        return "tool_calls" if self._calls else "stop"

    @property
    def completion(self) -> c.ChatCompletion:
        """The non-streaming body: what the chunks said, as one message (read after ``finish()``)."""
        message = c.ChatCompletionMessage(
            role="assistant",
            content="".join(self._content) if self._content else None,
            refusal="".join(self._refusal) if self._refusal else None,
            annotations=[],
        )
        if self._calls:
            message.tool_calls = [
                c.ChatCompletionMessageToolCall(
                    id=call.call_id, type="custom", custom=c.Custom(name=call.name, input="".join(call.args))
                )
                if call.custom
                else c.ChatCompletionMessageToolCall(
                    id=call.call_id,
                    type="function",
                    function=c.Function(name=call.name, arguments="".join(call.args)),
                )
                for call in self._calls.values()
            ]
        if self._reasoning:
            if self._mode == "reasoning":
                message.reasoning = "".join(self._reasoning)
            else:
                message.reasoning_content = "".join(self._reasoning)
        choice = c.Choice(
            index=0,
            message=message,
            logprobs=c.ChoiceLogprobs(content=list(self._logprobs)) if self._logprobs else None,
            finish_reason=self.finish_reason,
        )
        return c.ChatCompletion(
            id=self.completion_id,
            created=self.created,
            model=self.model,
            choices=[choice],
            usage=usage_body(self._usage) if self._usage is not None else None,
        )

    # ------------------------------------------------------------------ helpers

    def _chunk(
        self,
        delta: c.ChoiceDelta,
        logprobs: c.ChoiceLogprobs | None = None,
        finish: str | None = None,
    ) -> c.ChatCompletionChunk:
        model = self._model
        return c.ChatCompletionChunk(
            id=self.completion_id,
            created=self.created,
            model=model if model is not None else self.model,
            choices=[c.ChunkChoice(index=0, delta=delta, logprobs=logprobs, finish_reason=finish)],
            usage=None if self._include_usage else UNSET,
        )

    def _opening(self) -> list[c.ChatCompletionChunk]:
        """The opening chunk if it is still due, model known or not."""
        if self._started:
            return []
        self._started = True
        return [self._chunk(_OpeningDelta(role="assistant", content="", refusal=None))]

    def _lead(self) -> list[c.ChatCompletionChunk]:
        """Before any non-reasoning output: the opening chunk if due, and the closing think tag."""
        out = self._opening()
        self._reasoning_key = None
        if self._in_think:
            self._in_think = False
            self._content.append(THINK_CLOSE)
            out.append(self._chunk(c.ChoiceDelta(content=THINK_CLOSE)))
        return out

    def _text(self, delta: TextDelta, out: list[c.ChatCompletionChunk]) -> None:
        """Appends to ``out`` (the hot path: no list per delta)."""
        if not delta.text and not delta.logprobs:
            return
        if self._started and not self._in_think:  # what ``_lead`` would do, inline
            self._reasoning_key = None
        else:
            out += self._lead()
        logprobs = None
        if delta.logprobs:
            items = _logprobs(delta.logprobs)
            self._logprobs.extend(items)
            logprobs = c.ChoiceLogprobs(content=items)
        self._content.append(delta.text)
        out.append(self._chunk(c.ChoiceDelta(content=delta.text), logprobs))

    def _refusal_text(self, text: str) -> list[c.ChatCompletionChunk]:
        if not text:
            return []
        out = self._lead()
        self._refusal.append(text)
        out.append(self._chunk(c.ChoiceDelta(refusal=text)))
        return out

    def _reasoning_text(self, text: str, key: tuple[str, int]) -> list[c.ChatCompletionChunk]:
        if not text:
            return []
        out = self._opening()
        if key != self._reasoning_key and self._has_reasoning:
            text = "\n\n" + text  # a new summary part, or reasoning resumed after other output
        self._reasoning_key = key
        self._has_reasoning = True
        if self._mode == "think_tags":
            if not self._in_think:
                self._in_think = True
                self._content.append(THINK_OPEN)
                out.append(self._chunk(c.ChoiceDelta(content=THINK_OPEN)))
                text = text.removeprefix("\n\n")
            self._content.append(text)
            out.append(self._chunk(c.ChoiceDelta(content=text)))
        elif self._mode == "reasoning":
            self._reasoning.append(text)
            out.append(self._chunk(c.ChoiceDelta(reasoning=text)))
        else:
            self._reasoning.append(text)
            out.append(self._chunk(c.ChoiceDelta(reasoning_content=text)))
        return out

    def _call_start(self, delta: ToolCallStartDelta) -> list[c.ChatCompletionChunk]:
        if delta.index in self._calls:
            return []
        out = self._lead()
        index = len(self._calls)
        call_id = delta.call_id or f"call_{self.completion_id}_{index}"
        custom = isinstance(delta, CustomCallStartDelta)
        self._calls[delta.index] = _Call(index, call_id, delta.name, custom)
        first = (
            c.ChoiceDeltaToolCall(
                index=index,
                id=call_id,
                type="custom",
                custom=c.ChoiceDeltaToolCallCustom(name=delta.name, input=""),
            )
            if custom
            else c.ChoiceDeltaToolCall(
                index=index,
                id=call_id,
                type="function",
                function=c.ChoiceDeltaToolCallFunction(name=delta.name, arguments=""),
            )
        )
        out.append(self._chunk(c.ChoiceDelta(tool_calls=[first])))
        return out

    def _call_args(self, delta: ToolCallArgsDelta) -> list[c.ChatCompletionChunk]:
        call = self._calls.get(delta.index)
        if call is None or not delta.arguments:
            return []
        call.args.append(delta.arguments)
        more = (
            c.ChoiceDeltaToolCall(index=call.index, custom=c.ChoiceDeltaToolCallCustom(input=delta.arguments))
            if call.custom
            else c.ChoiceDeltaToolCall(
                index=call.index, function=c.ChoiceDeltaToolCallFunction(arguments=delta.arguments)
            )
        )
        return [self._chunk(c.ChoiceDelta(tool_calls=[more]))]

"""Sans-IO drivers that join decoder → reader → writer for one request.

The server's streaming glue, ``shim convert`` and the fixture tests all use these, so there is
one path from upstream bytes to client events. Non-streaming is a stream of one: a whole
completion is read into the same deltas and run through the same writer.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from msgspec import UNSET

from shim.core.deltas import Delta, ErrorDelta, TextDelta
from shim.dialects.model import Dialect, ResponseRules
from shim.errors import UpstreamTruncated
from shim.ids import Clock, IdFactory
from shim.sse import SSEDecoder
from shim.translate.chat_reader import ChatStreamReader, finish_reason, read_completion, usage_delta
from shim.translate.responses_writer import ResponsesStreamWriter, usage_of
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = ["ChatToResponsesStream", "chat_completion_to_response", "wants_logprobs"]


def wants_logprobs(body: r.CreateResponseBody) -> bool:
    return bool(body.top_logprobs) or "message.output_text.logprobs" in (body.include or ())


class ChatToResponsesStream:
    """Chat SSE bytes from the upstream in, Open Responses events out."""

    def __init__(
        self,
        template: r.ResponseResource,
        dialect: Dialect,
        *,
        ids: IdFactory,
        clock: Clock,
        include_logprobs: bool = False,
    ) -> None:
        self.decoder = SSEDecoder()
        self.reader = ChatStreamReader(dialect.response, ids)
        self._rules, self._ids = dialect.response, ids
        self.writer = ResponsesStreamWriter(template, ids=ids, clock=clock, include_logprobs=include_logprobs)

    def start(self) -> list[r.StreamingEvent]:
        return self.writer.start()

    def feed(self, data: bytes) -> list[r.StreamingEvent]:
        out: list[r.StreamingEvent] = []
        read = self.reader.feed_data
        write = self.writer.feed_all
        for event in self.decoder.feed(data):  # the hot loop: one pass per SSE event
            write(read(event.data), out)
        return out

    def feed_framed(self, data: bytes) -> list[r.StreamingEvent | bytes]:
        """``feed``, with each run of plain text deltas as the SSE bytes of its
        ``response.output_text.delta`` events (``encode_tagged``'s) instead of event structs
        (issue 18): read and written straight from the chunk's bytes (``ChatStreamReader.text_of``
        → ``ResponsesStreamWriter.texts_sse``), no delta or event struct built or encoded. Every
        other event stays a struct, for redaction and sealing. ``tests/test_forward_text_fast.py``
        holds it to ``feed``."""
        out: list[r.StreamingEvent | bytes] = []
        text_of = self.reader.text_of
        read = self.reader.feed_data
        write = self.writer.feed_all
        run: list[str] = []  # plain texts not written yet
        for event in self.decoder.feed(data):
            text = text_of(event.data)
            if text is not None:
                if text:
                    run.append(text)
                continue
            if run:
                self._texts(run, out)
                run = []
            out += write(read(event.data))
        if run:
            self._texts(run, out)
        return out

    def _texts(self, texts: list[str], out: list[r.StreamingEvent | bytes]) -> None:
        writer = self.writer
        written = writer.texts_sse(texts)
        if written is None:  # no text part open yet: the first text opens it, the long way
            out += writer.feed_all([TextDelta(texts[0])])
            if len(texts) == 1:
                return
            written = writer.texts_sse(texts[1:])
            if written is None:  # a part the writer cannot frame (a probe in its item id)
                out += writer.feed_all([TextDelta(text) for text in texts[1:]])
                return
        out.append(written.encode())

    def feed_completion(self, data: bytes) -> list[r.StreamingEvent]:
        """A whole (unstreamed) completion, for an upstream that cannot stream this request
        (``stream_auto_tool_choice``): the same deltas a stream of it would give, so the client
        sees the same events, all at once. Raises ``msgspec.DecodeError`` on a body that is no
        completion. Call ``finish()`` after it."""
        completion = c.decode_completion(data)
        self.reader.saw_done = True  # a whole body is complete by definition
        return self._deltas(read_completion(completion, self._rules, self._ids))

    def finish(self, *, truncated: bool = False) -> list[r.StreamingEvent]:
        """End of upstream bytes. ``truncated``: the connection ended before ``[DONE]``."""
        out: list[r.StreamingEvent] = []
        for event in self.decoder.finish():
            out.extend(self._deltas(self.reader.feed_data(event.data)))
        if truncated and not self.reader.saw_done and not self.reader.saw_finish:
            return out + self.writer.fail(ErrorDelta.of(UpstreamTruncated()))
        out.extend(self._deltas(self.reader.finish()))
        return out + self.writer.finish()

    def fail(self, error: ErrorDelta) -> list[r.StreamingEvent]:
        return self.writer.fail(error)

    @property
    def response(self) -> r.ResponseResource:
        return self.writer.response

    def _deltas(self, deltas: list[Delta]) -> list[r.StreamingEvent]:
        return self.writer.feed_all(deltas)


def chat_completion_to_response(
    template: r.ResponseResource,
    dialect: Dialect,
    data: bytes,
    *,
    ids: IdFactory,
    clock: Clock,
    include_logprobs: bool = False,
) -> r.ResponseResource:
    """A whole completion as the response: the writer fed a stream of one, or, for an answer of
    plain text, the same resource written straight (``_plain_answer``)."""
    completion = c.decode_completion(data)
    rules = dialect.response
    answer = _plain_answer(template, completion, rules, ids, clock, include_logprobs)
    if answer is not None:
        return answer
    deltas = read_completion(completion, rules, ids)
    writer = ResponsesStreamWriter(template, ids=ids, clock=clock, include_logprobs=include_logprobs)
    writer.start()
    writer.feed_all(deltas)
    writer.finish()
    return writer.response


def _plain_answer(
    template: r.ResponseResource,
    completion: c.ChatCompletion,
    rules: ResponseRules,
    ids: IdFactory,
    clock: Clock,
    include_logprobs: bool,
) -> r.ResponseResource | None:
    """What ``ResponsesStreamWriter`` makes of a completion that is one choice of plain text (or
    of nothing): no reasoning, refusal, tool call, ``<think>`` splitting or logprobs to write.
    Issue 18: no chunk, deltas, reader or events built on the way. ``None`` for anything else
    (the long way). ``tests/test_plain_answer.py`` holds it to the long way."""
    choices = completion.choices
    if rules.think_tags or len(choices) != 1:
        return None
    choice = choices[0]
    msg = choice.message
    reasoning, reasoning_content = msg.reasoning, msg.reasoning_content
    if (
        choice.index != 0
        or msg.refusal
        or msg.tool_calls
        or isinstance(msg.function_call, c.Function)
        or (reasoning and isinstance(reasoning, str))
        or (reasoning_content and isinstance(reasoning_content, str))
        or (include_logprobs and choice.logprobs is not None and choice.logprobs.content)
    ):
        return None
    # The ids and the clock are asked in the writer's order: the message's id, then the time.
    finish = finish_reason(choice.finish_reason) if choice.finish_reason else "stop"
    incomplete = finish == "length" or finish == "content_filter"
    output: list[r.ItemField] = []
    text = msg.content
    if text:
        part = r.OutputTextContent(text=text, annotations=[], logprobs=[] if include_logprobs else UNSET)
        status: r.Status = "incomplete" if incomplete else "completed"
        output.append(r.Message(id=ids("msg"), status=status, role="assistant", content=[part]))
    now = clock()
    answer = msgspec.structs.replace(template, output=output)
    usage = completion.usage
    if isinstance(usage, c.CompletionUsage):
        answer.usage = usage_of(usage_delta(usage))
    if incomplete:
        answer.status = "incomplete"
        answer.incomplete_details = r.IncompleteDetails(
            reason="max_output_tokens" if finish == "length" else "content_filter"
        )
    else:
        answer.status = "completed"
        answer.completed_at = now
    return answer


def run_stream(stream: ChatToResponsesStream, chunks: Iterable[bytes]) -> list[r.StreamingEvent]:
    events = stream.start()
    for chunk in chunks:
        events.extend(stream.feed(chunk))
    return events + stream.finish()

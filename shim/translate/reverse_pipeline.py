"""Sans-IO drivers for the reverse direction: Open Responses upstream bytes → Chat Completions.

The mirror of ``shim.translate.pipeline``: ``SSEDecoder`` → ``ResponsesStreamReader`` →
``ChatStreamWriter`` for streams, ``read_resource`` → the same writer for whole bodies, so a
non-streaming answer is a stream of one and both paths share every rule. The server's glue,
``shim convert`` and the tests all drive these.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from shim.core.deltas import Delta, ErrorDelta
from shim.errors import UpstreamError
from shim.sse import SSEDecoder, SSEEvent
from shim.translate.chat_writer import ChatStreamWriter, ReasoningMode
from shim.translate.responses_reader import ResponsesStreamReader, read_resource
from shim.wire import chat as c
from shim.wire.responses_decode import decode_resource

__all__ = [
    "ResponsesToChatStream",
    "read_responses_resource",
    "responses_resource_to_completion",
    "run_reverse_stream",
]


class ResponsesToChatStream:
    """Open Responses SSE bytes from the upstream in, Chat Completions chunks out.

    ``writer`` holds the outcome after ``finish()``: ``completion``, ``error`` (send it with
    ``error_chunk_bytes`` instead of a finish chunk) and ``encrypted_reasoning``.
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
        self.decoder = SSEDecoder()
        self.reader = ResponsesStreamReader()
        self.writer = ChatStreamWriter(
            completion_id=completion_id,
            created=created,
            model=model,
            reasoning=reasoning,
            include_usage=include_usage,
        )
        self.deltas: list[Delta] = []

    def start(self) -> list[c.ChatCompletionChunk]:
        """The opening chunk, sent before the upstream answers (with ``model=None``: at its first event)."""
        return self.writer.start()

    def feed(self, data: bytes) -> list[c.ChatCompletionChunk]:
        return self._events(self.decoder.feed(data))

    def finish(self, *, truncated: bool = False) -> list[c.ChatCompletionChunk]:
        """End of upstream bytes. ``truncated``: the connection ended before a terminal event."""
        out = self._events(self.decoder.finish())
        if truncated and not self.reader.done:
            return out + self.fail(
                ErrorDelta(
                    message="The upstream stream ended unexpectedly.", code="upstream_stream_truncated"
                )
            )
        return out + self.writer.finish()

    def fail(self, error: ErrorDelta) -> list[c.ChatCompletionChunk]:
        return self.writer.fail(error)

    @property
    def error(self) -> ErrorDelta | None:
        return self.writer.error

    @property
    def completion(self) -> c.ChatCompletion:
        return self.writer.completion

    def _events(self, events: list[SSEEvent]) -> list[c.ChatCompletionChunk]:
        out: list[c.ChatCompletionChunk] = []
        read = self.reader.feed
        write = self.writer.feed_all
        log = self.deltas
        for event in events:  # the hot loop: one pass per SSE event
            data = event.data
            if data == "[DONE]":
                continue
            try:
                deltas = read(event.event, data)
            except msgspec.DecodeError:  # ValidationError is a DecodeError
                deltas = [
                    ErrorDelta(message="The upstream sent a malformed event.", code="upstream_bad_event")
                ]
            log.extend(deltas)
            write(deltas, out)
        return out


def read_responses_resource(
    data: bytes,
    *,
    completion_id: str,
    created: int,
    model: str | None,
    reasoning: ReasoningMode = "reasoning_content",
) -> ChatStreamWriter:
    """A whole upstream ``ResponseResource`` run through the writer; read its outcome from it."""
    writer = ChatStreamWriter(completion_id=completion_id, created=created, model=model, reasoning=reasoning)
    writer.feed_all(read_resource(decode_resource(data)))
    writer.finish()
    return writer


def responses_resource_to_completion(
    data: bytes,
    *,
    completion_id: str,
    created: int,
    model: str | None,
    reasoning: ReasoningMode = "reasoning_content",
) -> c.ChatCompletion:
    """The non-streaming answer; a failed upstream response raises ``UpstreamError``."""
    writer = read_responses_resource(
        data, completion_id=completion_id, created=created, model=model, reasoning=reasoning
    )
    if writer.error is not None:
        raise UpstreamError(writer.error.message, code=writer.error.code or "upstream_error")
    return writer.completion


def run_reverse_stream(stream: ResponsesToChatStream, chunks: Iterable[bytes]) -> list[c.ChatCompletionChunk]:
    out = stream.start()
    for chunk in chunks:
        out.extend(stream.feed(chunk))
    return out + stream.finish()

"""Sans-IO: one Chat choice served from one Open Responses upstream answer — the one driver of
this direction, run by the server (``turns/chat_over_responses.py``), ``shim convert`` and the
fixture suite alike.

``SSEDecoder`` → ``ResponsesStreamReader`` → ``StopFilter`` → ``ChatStreamWriter`` for a stream;
``read_resource`` → the same filter and writer for a whole body, so a non-streaming answer is a
stream of one. Beside the chunks it keeps what the server needs afterwards: the upstream's
response id, the usage, whether a stop sequence ended it (cancel the upstream), and the
reasoning the upstream produced, as input items to send back on the next turn
(``reasoning_items``; ``encrypted_content`` included, never shown to the client).

``choice`` renumbers the chunks for ``n > 1`` (one driver per parallel upstream request).

The server takes the chunks as SSE bytes (``feed_sse``): a plain text delta, most of any stream,
is written there as text around its JSON string (``ChatStreamWriter.text_frame``), with no chunk
struct built or encoded; ``tests/test_reverse_text_fast.py`` holds it to ``sse(feed(data))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from shim.core.deltas import (
    Delta,
    ErrorDelta,
    MetaDelta,
    ReasoningDelta,
    ReasoningEncryptedDelta,
    ReasoningSummaryDelta,
    TextDelta,
    UsageDelta,
)
from shim.errors import UpstreamError, UpstreamTruncated
from shim.sse import SSEDecoder, SSEEvent, encode_data
from shim.translate.chat_writer import ChatStreamWriter, ReasoningMode, TextFrame
from shim.translate.responses_reader import ResponsesStreamReader, read_resource
from shim.translate.stop_sequences import StopFilter
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import decode_resource

_TEXT_DELTA = "response.output_text.delta"
_json = msgspec.json.Encoder().encode

__all__ = ["ChatChoiceDriver", "resource_to_completion", "run_chat_driver", "sse"]


class ChatChoiceDriver:
    def __init__(
        self,
        *,
        completion_id: str,
        created: int,
        model: str | None,
        reasoning: ReasoningMode = "reasoning_content",
        include_usage: bool = False,
        stops: list[str] | None = None,
        choice: int = 0,
    ) -> None:
        self.decoder = SSEDecoder()
        self.reader = ResponsesStreamReader()
        self.stop = StopFilter(stops or [])
        self.writer = ChatStreamWriter(
            completion_id=completion_id,
            created=created,
            model=model,
            reasoning=reasoning,
            include_usage=include_usage,
        )
        self.choice = choice
        self.upstream_id: str | None = None
        self.usage: UsageDelta | None = None
        self._reasoning: list[str] = []
        self._summary: dict[int, list[str]] = {}
        self._encrypted: list[str] = []
        self._run: tuple[TextFrame, str, str] | None = None  # a text frame, its head and tail as SSE

    # ------------------------------------------------------------------ streams

    def start(self) -> list[c.ChatCompletionChunk]:
        return self._index(self.writer.start())

    def feed(self, data: bytes) -> list[c.ChatCompletionChunk]:
        return self._events(self.decoder.feed(data))

    def feed_sse(self, data: bytes) -> bytes:
        """``sse(self.feed(data))``, written the short way (issue 18): without stop sequences or
        renumbering, a plain text delta (non-empty, no logprobs) becomes its chunk's bytes
        straight from the writer's ``text_frame``, no chunk struct built or encoded."""
        events = self.decoder.feed(data)
        if self.choice or self.stop.stops:
            return sse(self._events(events))
        parts: list[str] = []
        text_of = self.reader.text_of
        writer = self.writer
        head = tail = ""
        add: Callable[[str], None] | None = None  # ``content.append`` of the frame in use
        for event in events:
            if event.event == _TEXT_DELTA:
                text = text_of(event.data)
                if text is not None:
                    if add is None:
                        # The frame of the last run of text deltas holds while nothing else
                        # was called on the writer (often: the last network chunk's).
                        frame = writer.live_frame
                        if frame is None:
                            frame = writer.text_frame()
                        if frame is None:  # not writable the short way: as ``_events`` does
                            parts.append(sse(writer.feed_all([TextDelta(text, None)])).decode())
                            continue
                        run = self._run
                        if run is None or run[0] is not frame:
                            run = self._run = (frame, "data: " + frame.head, frame.tail + "\n\n")
                        _, head, tail = run
                        add = frame.content.append
                    add(text)
                    if '"' in text or "\\" in text or not text.isprintable():
                        parts.append(f"{head}{_json(text).decode()}{tail}")
                    else:  # the text is its own JSON string's body
                        parts.append(f'{head}"{text}"{tail}')
                    continue
            add = None  # anything else may change the writer: a new frame for the next text
            chunks: list[c.ChatCompletionChunk] = []
            self._read(event, chunks)
            if chunks:
                parts.append(sse(chunks).decode())
        return "".join(parts).encode()

    def finish(self, *, truncated: bool = False) -> list[c.ChatCompletionChunk]:
        """End of upstream bytes (or a stop sequence matched and the upstream was cancelled)."""
        out = [] if self.stopped else self._events(self.decoder.finish())
        if truncated and not self.reader.done and not self.stopped:
            return out + self.fail(ErrorDelta.of(UpstreamTruncated()))
        out += self._deltas(self.stop.finish())
        return out + self._index(self.writer.finish())

    def fail(self, error: ErrorDelta) -> list[c.ChatCompletionChunk]:
        return self.writer.fail(error)

    # ------------------------------------------------------------------ whole bodies

    def read_body(self, data: bytes) -> None:
        """A whole upstream ``ResponseResource``; read ``completion`` or ``error`` afterwards."""
        try:
            resource = decode_resource(data)
        except msgspec.DecodeError as exc:
            self.writer.fail(
                ErrorDelta(
                    message=f"The upstream's answer is not a response: {exc}",
                    code="upstream_invalid_response",
                )
            )
            return
        self._deltas(read_resource(resource))
        self._deltas(self.stop.finish())
        self.writer.finish()

    # ------------------------------------------------------------------ outcome

    @property
    def stopped(self) -> bool:
        return self.stop.stopped

    @property
    def error(self) -> ErrorDelta | None:
        return self.writer.error

    @property
    def completion(self) -> c.ChatCompletion:
        completion = self.writer.completion
        for choice in completion.choices:
            choice.index = self.choice
        return completion

    def reasoning_items(self) -> list[r.ItemParam]:
        """The reasoning of this answer as input items, ready to be sent back upstream."""
        text = "".join(self._reasoning)
        summary = [
            r.SummaryTextContent(text="".join(parts)) for _, parts in sorted(self._summary.items()) if parts
        ]
        if not (text or summary or self._encrypted):
            return []
        content = [r.ReasoningTextContent(text=text)] if text else None
        items: list[r.ItemParam] = []
        blobs: list[str | None] = [*self._encrypted] or [None]
        for blob in blobs:
            items.append(r.ReasoningItemParam(summary=summary, content=content, encrypted_content=blob))
            summary, content = [], None  # the readable parts go with the first item only
        return items

    # ------------------------------------------------------------------ helpers

    def _events(self, events: list[SSEEvent]) -> list[c.ChatCompletionChunk]:
        out: list[c.ChatCompletionChunk] = []
        plain = not self.choice and not self.stop.stops  # no renumbering, no stop sequences
        text_of = self.reader.text_of
        text_chunk = self.writer.text_chunk
        for event in events:
            # A plain text delta, most of any stream, read and written without a delta between:
            # ``feed`` → ``feed_all`` would do the same (without stops, ``stop.stopped`` stays
            # False). Anything else (``None`` from either) goes the general way.
            if plain and event.event == _TEXT_DELTA:
                text = text_of(event.data)
                if text is not None:
                    chunk = text_chunk(text)
                    if chunk is not None:
                        out.append(chunk)
                    else:
                        self.writer.feed_all([TextDelta(text, None)], out)
                    continue
            self._read(event, out)
        return out

    def _read(self, event: SSEEvent, out: list[c.ChatCompletionChunk]) -> None:
        """One event the general way: its chunks appended to ``out``."""
        data = event.data
        if data == "[DONE]" or self.stop.stopped:
            return
        try:
            deltas = self.reader.feed(event.event, data)
        except msgspec.DecodeError:  # ValidationError is a DecodeError
            deltas = [ErrorDelta(message="The upstream sent a malformed event.", code="upstream_bad_event")]
        if not self.choice and not self.stop.stops and len(deltas) == 1 and type(deltas[0]) is TextDelta:
            self.writer.feed_all(deltas, out)  # nothing to note
        else:
            out += self._deltas(deltas)

    def _deltas(self, deltas: list[Delta]) -> list[c.ChatCompletionChunk]:
        for delta in deltas:
            if type(delta) is TextDelta:  # most of any stream: nothing to note
                continue
            if isinstance(delta, MetaDelta):
                self.upstream_id = delta.upstream_id or self.upstream_id
            elif isinstance(delta, UsageDelta):
                self.usage = delta
            elif isinstance(delta, ReasoningDelta):
                self._reasoning.append(delta.text)
            elif isinstance(delta, ReasoningSummaryDelta):
                self._summary.setdefault(delta.summary_index, []).append(delta.text)
            elif isinstance(delta, ReasoningEncryptedDelta):
                self._encrypted.append(delta.encrypted_content)
        chunks = self.writer.feed_all(self.stop.feed_all(deltas) if self.stop.stops else deltas)
        return self._index(chunks) if self.choice else chunks

    def _index(self, chunks: list[c.ChatCompletionChunk]) -> list[c.ChatCompletionChunk]:
        if self.choice:
            for chunk in chunks:
                for choice in chunk.choices:
                    choice.index = self.choice
        return chunks


def sse(chunks: list[c.ChatCompletionChunk]) -> bytes:
    """Chunks as the SSE bytes a client gets: ``data: …`` and a blank line each, a chunk
    without a choice left out (the server sums the choices' usage into a chunk of its own)."""
    return b"".join([encode_data(c.encode_chunk(chunk)) for chunk in chunks if chunk.choices])


def run_chat_driver(driver: ChatChoiceDriver, chunks: Iterable[bytes]) -> list[c.ChatCompletionChunk]:
    """A whole recorded stream through ``driver``: its chunks, opening and final ones included."""
    out = driver.start()
    for chunk in chunks:
        out.extend(driver.feed(chunk))
    return out + driver.finish()


def resource_to_completion(
    data: bytes,
    *,
    completion_id: str,
    created: int,
    model: str | None,
    reasoning: ReasoningMode = "reasoning_content",
) -> c.ChatCompletion:
    """A whole upstream ``ResponseResource`` as a completion (a stream of one); a failed upstream
    response raises ``UpstreamError``."""
    driver = ChatChoiceDriver(completion_id=completion_id, created=created, model=model, reasoning=reasoning)
    driver.read_body(data)
    if driver.error is not None:
        raise UpstreamError(driver.error.message, code=driver.error.code or "upstream_error")
    return driver.completion

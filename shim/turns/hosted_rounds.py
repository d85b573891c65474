"""One round of the hosted loop (``hosted_loop.py``): how its upstream answer is read and merged.

``Round`` is a round's ``EventsTranslation`` seen through the ``RoundMerger`` (the pump's
``Translation``). ``FramedRound`` is the same for an SSE client, with the round's plain text
deltas as SSE bytes numbered by the merger, as a plain stream's are (issue 18). ``whole_round``
is what the pump does with an unstreamed round, for a JSON client's ``complete``, without the
pump's keep-alive machinery (issue 18).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

import httpx

from shim.core.deltas import TextDelta
from shim.errors import ShimError, UpstreamError
from shim.translate.hosted_events import RoundMerger
from shim.turns.pump import Timing
from shim.upstream.errors import STREAM_FAILURES, as_upstream_error
from shim.upstream.redaction import EventRedactor
from shim.wire import responses as r

__all__ = ["Framed", "FramedRound", "Round", "whole_round"]

log = logging.getLogger("shim")

_TEXT_DELTA = r.ResponseOutputTextDeltaStreamingEvent
Framed = r.StreamingEvent | bytes  # an event, or the SSE bytes of a run of text deltas


class Round:
    """One round's ``EventsTranslation`` seen through the merger (the pump's ``Translation``)."""

    def __init__(self, inner: Any, merger: RoundMerger) -> None:
        self.inner, self.merger = inner, merger

    def start(self) -> list[r.StreamingEvent]:
        return []

    def feed(self, data: bytes) -> list[r.StreamingEvent]:
        return self.merger.feed(self.inner.feed(data))

    def finish(self) -> list[r.StreamingEvent]:
        return self.merger.feed(self.inner.finish())

    def fail(self, error: UpstreamError) -> list[r.StreamingEvent]:
        return self.merger.feed(self.inner.fail(error))

    def unstored(self, tail: list[r.StreamingEvent], error: ShimError) -> list[r.StreamingEvent]:
        return self.inner.unstored(tail, error)  # type: ignore[no-any-return]

    @property
    def stopped(self) -> bool:
        return bool(self.inner.stopped)


class FramedRound:
    """A streamed round for an SSE client: each run of plain text deltas comes as the SSE bytes
    the client gets, numbered as the merger numbers (``RoundMerger.texts``), as a plain stream's
    do (``ChatToResponsesStream.feed_framed``, issue 18); every other event is merged as a struct,
    sealed and redacted as ever (text deltas carry neither reasoning nor a message to redact)."""

    def __init__(self, inner: Any, merger: RoundMerger) -> None:
        self.inner, self.merger, self.driver = inner, merger, inner.driver
        self.events = Round(inner, merger)  # what is not a text delta goes the same way
        self.like: r.ResponseOutputTextDeltaStreamingEvent | None = None  # the last merged text delta

    def start(self) -> list[r.StreamingEvent]:
        return []

    def finish(self) -> list[r.StreamingEvent]:
        return self.events.finish()

    def fail(self, error: UpstreamError) -> list[r.StreamingEvent]:
        return self.events.fail(error)

    def unstored(self, tail: list[Framed], error: ShimError) -> list[Framed]:
        # ``finish`` and ``fail`` give structs only: the last batch is events.
        events = [event for event in tail if not isinstance(event, bytes)]
        return [*self.events.unstored(events, error)] if len(events) == len(tail) else tail

    @property
    def stopped(self) -> bool:
        return bool(self.inner.stopped)

    def feed(self, data: bytes) -> list[Framed]:
        if not self.inner.streamed:
            return [*self._merged(self.inner.feed(data))]
        driver = self.driver
        text_of, read, write = driver.reader.text_of, driver.reader.feed_data, driver.writer.feed_all
        out: list[Framed] = []
        run: list[str] = []  # plain texts not written yet
        for event in driver.decoder.feed(data):
            text = text_of(event.data)
            if text is not None:
                if text:
                    run.append(text)
                continue
            if run:
                self._texts(run, out)
                run = []
            out += self._merged(write(read(event.data)))
        if run:
            self._texts(run, out)
        return out

    def _merged(self, events: list[r.StreamingEvent]) -> list[r.StreamingEvent]:
        inner = self.inner
        if inner.sealed is not None:
            for event in events:
                inner.sealed.seal_event(event, inner.family)
        merged = self.merger.feed(events)
        for event in reversed(merged):
            if type(event) is _TEXT_DELTA:
                self.like = event
                break
        return merged

    def _texts(self, texts: list[str], out: list[Framed]) -> None:
        writer = self.driver.writer
        # The writer notes the texts (its own SSE of them, numbered as the round's, is not sent).
        if writer.texts_sse(texts) is None:  # no text part open yet: the first opens it, the long way
            out += self._merged(writer.feed_all([TextDelta(texts[0])]))
            texts = texts[1:]
            if not texts:
                return
            if writer.texts_sse(texts) is None:  # a part the writer cannot frame
                out += self._merged(writer.feed_all([TextDelta(text) for text in texts]))
                return
        assert self.like is not None, "an open text part's first text went the long way"
        out += self.merger.texts(self.like, texts)


async def whole_round(
    response: httpx.Response,
    translation: Round,
    timing: Timing,
    redactor: EventRedactor,
    on_finish: Callable[[], Awaitable[None]],
) -> list[r.StreamingEvent]:
    """What ``pump`` does with an unstreamed round, for ``complete``: the answer read whole, each
    read within ``timing.idle`` of the last (the pump's idle limit), translated at its end, a read
    failure failing the round, ``on_finish`` run (a store failure logged and the round's events
    made a failure, as the pump does), the events redacted. No keep-alive: the pump's read runs
    as a task with a waiter and a timer per chunk, for ticks ``complete`` drops (issue 18).

    The body is read from the response's stream: the upstream client decoded a compressed answer
    there already (``UpstreamClient._bound``), so httpx's ``aiter_bytes`` (three generators, an
    identity decoder and a chunker) would only drop empty chunks, as this does."""
    # (an answer still carrying a content-encoding goes through httpx's decoders, as the pump's)
    stream = response.stream
    if isinstance(stream, httpx.AsyncByteStream) and "content-encoding" not in response.headers:
        source: AsyncIterable[bytes] = stream
    else:
        source = response.aiter_bytes()
    try:
        try:
            loop = asyncio.get_running_loop()
            idle = None if math.isinf(timing.idle) else timing.idle
            async with asyncio.timeout_at(None if idle is None else loop.time() + idle) as limit:
                async for chunk in source:
                    if not chunk:
                        continue
                    translation.feed(chunk)  # an unstreamed round holds the bytes until its end
                    if idle is not None:
                        limit.reschedule(loop.time() + idle)
            tail = translation.finish()
        except STREAM_FAILURES as exc:
            tail = translation.fail(as_upstream_error(exc))
        try:
            await on_finish()
        except ShimError as exc:  # the store failed after the upstream did the work
            log.warning("a finished answer could not be stored: %s", exc.message)
            tail = translation.unstored(tail, exc)
        return redactor(tail)
    finally:
        await response.aclose()

"""The one seam between the shim and OpenTelemetry (docs/tracing.md).

Everything that traces goes through the functions here; only ``shim.tracing.otel`` imports
OpenTelemetry, and only ``start`` imports it, when OTEL_EXPORTER_OTLP_ENDPOINT asks for traces
(the ``shim[otel]`` extra). Off, each hook is one test of a module global, so the hot path pays
nothing: ``active()`` is ``None``, ``upstream_call`` returns ``None``, the span helpers are shared
no-op context managers.

- the request span: ``shim.http.observability`` (HTTP requests and WebSocket turns);
- ``upstream_call``: one child span per upstream call (``shim.upstream.client``), with the GenAI
  attributes read from the answer as it passes (``answers.AnswerReader``). The same reading
  settles a key's token count (``RequestRecord.usage_wanted``), so it also runs without traces
  when a tokens-per-minute limit applies;
- ``store_span``: one span per store operation inside a traced request;
- ``tool_call``: one span per hosted tool call, for the hosted tools' loop (MCP, web search).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import httpx

from shim.settings import Route, TracingSettings, capture_content_wanted, tracing_wanted
from shim.telemetry import RequestRecord, current_record
from shim.tracing.answers import Answer, AnswerReader

if TYPE_CHECKING:
    from shim.tracing.otel import Tracing

__all__ = ["ToolCall", "UpstreamCall", "active", "start", "store_span", "tool_call", "upstream_call", "use"]

log = logging.getLogger("shim.tracing")

_active: Tracing | None = None


def active() -> Tracing | None:
    """The tracing in use, or ``None`` (traces off)."""
    return _active


def use(tracing: Tracing | None) -> Tracing | None:
    """Make ``tracing`` the one in use (``None``: off); returns the previous one (tests)."""
    global _active
    previous, _active = _active, tracing
    return previous


def start(settings: TracingSettings) -> Tracing | None:
    """Traces exported over OTLP/HTTP when the OTEL_* variables ask for them (``tracing_wanted``);
    without the ``otel`` extra installed, a warning and no traces: the shim runs the same."""
    if not tracing_wanted():
        return None
    try:
        from shim.tracing.otel import Tracing, exporting_provider
    except ImportError as exc:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry's SDK is not installed (%s); "
            "traces are off. Install it with: pip install 'shim[otel]'",
            exc.name or exc,
        )
        return None
    tracing = Tracing(exporting_provider(), capture_content=capture_content_wanted(settings))
    use(tracing)
    return tracing


# --------------------------------------------------------------------------- upstream calls


def upstream_call(
    route: Route,
    model: str,
    path: str,
    body: bytes,
    key: str | None = None,
    redact: Callable[[str, str | None], str] | None = None,
) -> UpstreamCall | None:
    """An observation of one upstream call, or ``None`` when neither traces nor a token limit
    want it (the upstream client then does nothing more). ``redact(text, key)`` cuts the upstream
    ``key`` out of captured text (an upstream may echo it)."""
    tracing, record = _active, current_record().get()
    if tracing is None and (record is None or not record.usage_wanted):
        return None
    return UpstreamCall(tracing, record, route, model, path, body, key, redact)


class UpstreamCall:
    """Used by the upstream client as ``with call: return call.answered(response, stream)``: the
    span starts here and ends with the answer's last byte (or the failure)."""

    def __init__(
        self,
        tracing: Tracing | None,
        record: RequestRecord | None,
        route: Route,
        model: str,
        path: str,
        body: bytes,
        key: str | None = None,
        redact: Callable[[str, str | None], str] | None = None,
    ) -> None:
        self.tracing = tracing
        self.key = key
        self.redact = redact  # before the span starts: its captured input is scrubbed too
        self.record = record
        self.kind: Literal["chat", "responses"] = "responses" if path.endswith("/responses") else "chat"
        self.content = tracing is not None and tracing.capture_content
        self.span = (
            tracing.upstream_span(route, model, self.kind, body, self.scrub) if tracing is not None else None
        )
        # The upstream call's span rides on to the upstream (a vLLM or a gateway that traces too).
        self.headers = tracing.context_headers(self.span) if tracing is not None and self.span else None
        self.ended = False

    def scrub(self, text: str) -> str:
        """Captured text without the upstream key (an upstream may echo it)."""
        return self.redact(text, self.key) if self.redact is not None and self.key else text

    def __enter__(self) -> UpstreamCall:
        return self

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if error is not None:
            self.end(None, error)

    def answered(self, response: httpx.Response, stream: bool) -> httpx.Response:
        """The open answer, its body observed: read now when it was read whole, else as it passes."""
        sse = response.headers.get("content-type", "").startswith("text/event-stream")
        reader = AnswerReader(self.kind, stream=sse, content=self.content)
        if not stream:
            reader.feed(response.content)
            self.end(reader.finish(), None)
            return response
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Observed(response.stream, reader, self)
        return response

    def end(self, answer: Answer | None, error: BaseException | None) -> None:
        if self.ended:
            return
        self.ended = True
        record = self.record
        if record is not None and answer is not None:
            record.answered += 1
            if answer.input_tokens is not None or answer.output_tokens is not None:
                used = (answer.input_tokens or 0) + (answer.output_tokens or 0)
                record.used_tokens = (record.used_tokens or 0) + used
        if self.tracing is not None and self.span is not None:
            if answer is not None and answer.output_text:
                answer.output_text = self.scrub(answer.output_text)
            self.tracing.end_upstream(self.span, answer, error)


class _Observed(httpx.AsyncByteStream):
    """An answer body passed on unchanged, each chunk shown to the reader on the way."""

    def __init__(self, inner: httpx.AsyncByteStream, reader: AnswerReader, call: UpstreamCall) -> None:
        self.inner = inner
        self.reader = reader
        self.call = call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        feed = self.reader.feed
        try:
            async for chunk in self.inner:
                feed(chunk)
                yield chunk
        except Exception as exc:
            self.call.end(self.reader.finish(), exc)
            raise
        self.call.end(self.reader.finish(), None)

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.call.end(self.reader.finish(), None)  # a client that went away: what came so far


# --------------------------------------------------------------------------- store and tools


_NOTHING = contextlib.nullcontext()


def store_span(op: str, system: str) -> contextlib.AbstractContextManager[Any]:
    """A span around one store operation inside a traced request (``system``: ``redis``,
    ``diskcache``, ``memory``); nothing otherwise."""
    tracing = _active
    if tracing is None:
        return _NOTHING
    return tracing.store_span(op, system)


class ToolCall:
    """The span of one hosted tool call, as ``tool_call`` yields it. ``result`` records what the
    tool answered (kept only when the operator captures content); ``failed`` marks an error."""

    def __init__(self, tracing: Tracing | None, span: Any) -> None:
        self._tracing = tracing
        self._span = span

    def result(self, text: str) -> None:
        if self._tracing is not None:
            self._tracing.tool_result(self._span, text)

    def failed(self, kind: str, message: str = "") -> None:
        if self._tracing is not None:
            self._tracing.tool_failed(self._span, kind, message)


_NO_TOOL = ToolCall(None, None)


@contextlib.contextmanager
def tool_call(
    name: str,
    *,
    tool_type: str = "mcp",
    call_id: str | None = None,
    server: str | None = None,
    arguments: str | None = None,
) -> Iterator[ToolCall]:
    """One hosted tool call (an MCP ``tools/call``, a web search) as an ``execute_tool {name}``
    span under the current request, for the hosted tools' loop::

        with tracing.tool_call("get_weather", server="weather", call_id=item.id, arguments=args) as span:
            text = await session.call_tool(...)
            span.result(text)

    ``server`` is the MCP server's label (never its URL or headers); ``arguments`` and the result
    are kept only with content capture on. An exception leaving the block marks the span failed
    and propagates. Off (no tracing), this costs a generator and yields a no-op."""
    tracing = _active
    if tracing is None:
        yield _NO_TOOL
        return
    with tracing.tool_span(
        name, tool_type=tool_type, call_id=call_id, server=server, arguments=arguments
    ) as span:
        yield ToolCall(tracing, span)

"""The OpenTelemetry side of the seam (``shim.tracing``): imported only when traces are on.

Spans follow the GenAI and HTTP semantic conventions (docs/tracing.md lists every attribute):

- ``{METHOD} {route}`` (SERVER) per HTTP request, ``WEBSOCKET /v1/responses`` per WebSocket turn,
  continuing an incoming W3C ``traceparent`` (the propagators OTEL_PROPAGATORS names);
- ``chat {model}`` (CLIENT) per upstream call: ``gen_ai.operation.name``, ``gen_ai.provider.name``
  (and the older ``gen_ai.system``), ``gen_ai.request.model``, the request's sampling settings,
  ``gen_ai.response.model`` / ``.id`` / ``.finish_reasons``, ``gen_ai.usage.input_tokens`` /
  ``.output_tokens``, ``server.address`` / ``server.port``, ``error.type``;
- ``store {op}`` (CLIENT) per store operation, ``execute_tool {name}`` (INTERNAL) per hosted tool.

Prompts and completions (``gen_ai.input.messages``, ``gen_ai.output.messages``, tool arguments
and results) are recorded only with content capture on (``[server.tracing] capture_content``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from shim.errors import ShimError
from shim.settings import Route, otel_service_named
from shim.telemetry import upstream_host
from shim.tracing.answers import Answer

__all__ = ["RequestSpan", "Tracing", "exporting_provider"]

try:
    _VERSION = version("shim")
except PackageNotFoundError:  # a source checkout without an install
    _VERSION = "0"


class _Sampling(msgspec.Struct):
    """The request settings the GenAI conventions name, read from the upstream body."""

    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    messages: msgspec.Raw = msgspec.Raw(b"")  # empty: absent (Raw cannot be in a union)
    input: msgspec.Raw = msgspec.Raw(b"")
    instructions: str | None = None


_sampling = msgspec.json.Decoder(_Sampling)


def exporting_provider() -> TracerProvider:
    """A provider exporting in batches over OTLP/HTTP; the SDK reads the OTEL_* variables
    (endpoint, headers, timeout, sampler, resource attributes, batch sizes)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    attributes = {} if otel_service_named() else {"service.name": "shim"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def _error_type(error: BaseException) -> str:
    if isinstance(error, ShimError) and error.code:
        return error.code
    return type(error).__qualname__


class RequestSpan:
    """A request's span, made current for everything the request does until ``end``."""

    def __init__(self, span: Span, token: object) -> None:
        self.span = span
        self.token = token

    @property
    def trace_id(self) -> str:
        return format(self.span.get_span_context().trace_id, "032x")

    def end(self, method: str, route: str, status: int) -> None:
        span = self.span
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status))
        otel_context.detach(self.token)  # type: ignore[arg-type]
        span.end()


class Tracing:
    def __init__(self, provider: trace.TracerProvider, *, capture_content: bool = False) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("shim", _VERSION)
        self.capture_content = capture_content

    def shutdown(self) -> None:
        """Export what is still queued (the app's shutdown)."""
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()

    # ----------------------------------------------------------------- requests

    def request(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]], request_id: str
    ) -> RequestSpan:
        carrier = {bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1") for k, v in headers}
        parent = propagate.extract(carrier)  # traceparent / tracestate (OTEL_PROPAGATORS)
        span = self.tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "shim.request_id": request_id},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return RequestSpan(span, token)

    # ----------------------------------------------------------------- upstream calls

    def context_headers(self, span: Span) -> dict[str, str]:
        """The headers that carry ``span`` on to the upstream (``traceparent``, ``tracestate``:
        the propagators OTEL_PROPAGATORS names; ``none`` sends nothing)."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def upstream_span(
        self, route: Route, model: str, kind: str, body: bytes, scrub: Callable[[str], str]
    ) -> Span:
        provider = route.provider or route.dialect
        host = upstream_host(route.upstream)  # scheme://host:port, never a path or user info
        address, _, port = host.partition("://")[2].partition(":")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.request.model": model,
            "openai.api.type": "responses" if kind == "responses" else "chat_completions",
            "server.address": address,
        }
        if port:
            attributes["server.port"] = int(port)
        try:
            sampling = _sampling.decode(body)
        except msgspec.DecodeError:
            sampling = _Sampling()
        max_tokens = sampling.max_completion_tokens or sampling.max_tokens or sampling.max_output_tokens
        for name, value in (
            ("gen_ai.request.max_tokens", max_tokens),
            ("gen_ai.request.temperature", sampling.temperature),
            ("gen_ai.request.top_p", sampling.top_p),
            ("gen_ai.request.stream", sampling.stream),
        ):
            if value is not None:
                attributes[name] = value
        if self.capture_content:
            messages = bytes(sampling.messages) or bytes(sampling.input)
            if messages:
                attributes["gen_ai.input.messages"] = scrub(messages.decode())
            if sampling.instructions:
                attributes["gen_ai.system_instructions"] = scrub(sampling.instructions)
        return self.tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes)

    def end_upstream(self, span: Span, answer: Answer | None, error: BaseException | None) -> None:
        if answer is not None:
            for name, value in (
                ("gen_ai.response.id", answer.id),
                ("gen_ai.response.model", answer.model),
                ("gen_ai.usage.input_tokens", answer.input_tokens),
                ("gen_ai.usage.output_tokens", answer.output_tokens),
            ):
                if value is not None:
                    span.set_attribute(name, value)
            if answer.finish_reasons:
                span.set_attribute("gen_ai.response.finish_reasons", answer.finish_reasons)
            if self.capture_content and answer.output_text is not None:
                span.set_attribute("gen_ai.output.messages", answer.output_text)
        if error is not None:
            kind = _error_type(error)
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end()

    # ----------------------------------------------------------------- store and tools

    def store_span(self, op: str, system: str) -> contextlib.AbstractContextManager[Any]:
        if not trace.get_current_span().is_recording():
            return contextlib.nullcontext()  # outside a traced request: no root span per lease renewal
        return self.tracer.start_as_current_span(
            f"store {op}",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": system, "db.operation.name": op},
        )

    @contextlib.contextmanager
    def tool_span(
        self,
        name: str,
        *,
        tool_type: str,
        call_id: str | None,
        server: str | None,
        arguments: str | None,
    ) -> Iterator[Span]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "extension",
            "shim.tool.kind": tool_type,
        }
        if call_id:
            attributes["gen_ai.tool.call.id"] = call_id
        if tool_type == "mcp":
            attributes["mcp.method.name"] = "tools/call"  # the MCP semantic conventions' method
        if server:
            attributes["mcp.server.name"] = server
        if self.capture_content and arguments is not None:
            attributes["gen_ai.tool.call.arguments"] = arguments
        with self.tracer.start_as_current_span(
            f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            try:
                yield span
            except BaseException as exc:
                span.set_attribute("error.type", _error_type(exc))
                raise

    def tool_result(self, span: Span, text: str) -> None:
        if self.capture_content:
            span.set_attribute("gen_ai.tool.call.result", text)

    @staticmethod
    def tool_failed(span: Span, kind: str, message: str) -> None:
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, message or kind))

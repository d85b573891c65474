from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.live_fixtures import fault, isolated

__all__ = ["fault", "isolated", "spans"]


@pytest.fixture
def spans() -> Iterator[object]:
    """Spans of the test, kept in memory: the SDK's own exporter behind the shim's seam."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from shim import tracing
    from shim.tracing.otel import Tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.use(Tracing(provider))
    yield exporter
    tracing.use(previous)
    provider.shutdown()

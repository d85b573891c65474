"""Fixtures shared by the suites that drive a ``LiveShim`` over a ``FaultUpstream`` (tests/faults,
tests/ops): each conftest imports them, so both suites run under the same isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import isolated_env

__all__ = ["fault", "isolated", "spans"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolated_env(monkeypatch, tmp_path)


@pytest.fixture
async def fault() -> AsyncIterator[FaultUpstream]:
    async with FaultUpstream() as upstream:
        yield upstream


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

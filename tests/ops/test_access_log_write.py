"""The access line is written straight to stderr only while nobody else listens to the logger;
either way its text is the same compact JSON ``json.dumps`` would give."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from shim.http import observability
from shim.http.observability import _write_access_line, access_log, configure_logging

LINE = {
    "ts": 1764077000.123,
    "event": "request",
    "request_id": "req_0123456789abcdef0123456789abcdef",
    "method": "POST",
    "route": "/v1/responses",
    "status": 200,
    "latency_ms": 1.25,
    "stream": False,
    "bytes_out": 1234,
    "upstream": "http://127.0.0.1:8080",
    "input_tokens": 12,
    "output_tokens": None,
    "retries": 0,
    "upstream_error": None,
}
EXPECTED = json.dumps(LINE, separators=(",", ":")) + "\n"


class _Seen(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """``configure_logging`` as ``shim serve`` calls it, its stream captured; the logger restored after."""
    saved = (access_log.handlers[:], access_log.propagate, access_log.disabled, access_log.level)
    saved_own = observability._own_handler
    access_log.handlers.clear()
    stream = io.StringIO()
    try:
        configure_logging(enabled=True)
        assert observability._own_handler is not None
        observability._own_handler.setStream(stream)
        yield stream
    finally:
        access_log.handlers[:] = saved[0]
        access_log.propagate, access_log.disabled = saved[1], saved[2]
        access_log.setLevel(saved[3])
        observability._own_handler = saved_own


@pytest.mark.parametrize("listener", ["none", "extra-handler", "filter"])
def test_line_text_and_path(stderr: io.StringIO, listener: str) -> None:
    seen = _Seen()
    if listener == "extra-handler":
        access_log.addHandler(seen)
    if listener == "filter":
        access_log.addFilter(lambda record: setattr(record, "tagged", True) or True)
    _write_access_line(dict(LINE))
    assert stderr.getvalue() == EXPECTED  # the same text whichever way it went
    assert seen.messages == ([EXPECTED.rstrip("\n")] if listener == "extra-handler" else [])
    access_log.removeHandler(seen)
    access_log.filters.clear()


def test_broken_stderr_does_not_fail_the_request(stderr: io.StringIO) -> None:
    stderr.close()
    _write_access_line(dict(LINE))  # no exception

"""Every folder under ``fixtures/responses_over_chat/<dialect>/<case>/`` is a test case.

An Open Responses client (``request.json``) served over a Chat Completions upstream that
answered with the bytes in ``upstream[.synthetic].sse`` / ``.json``. For each folder:

- the Chat request we would send upstream, and the diagnostics, are snapshotted;
- an error body (``case.toml`` ``upstream_status >= 400``) is mapped to the client's error;
- a stream is translated to events, snapshotted, checked against the spec's models and our
  lifecycle rules, re-chunked at every byte boundary (identical events), and folded into one
  completion whose translation must equal the stream's final response;
- a whole completion is translated, snapshotted and checked against the spec.

Adding a case is a folder plus ``pytest --snapshot-update`` plus reading the new snapshots;
see ``fixtures/README.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import msgspec
from checks.lifecycle import check_lifecycle
from checks.oracle import validate_event, validate_resource
from syrupy.assertion import SnapshotAssertion

from shim.core.diagnostics import Diagnostics
from shim.dialects.model import Dialect
from shim.dialects.registry import get_dialect
from shim.ids import CountingIds, fixed_clock
from shim.sse import SSEDecoder, SSEEvent
from shim.translate.chat_accumulate import accumulate
from shim.translate.chat_request import to_chat_request
from shim.translate.echo import response_template
from shim.translate.pipeline import ChatToResponsesStream, chat_completion_to_response, wants_logprobs
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import decode_create_response_body
from tests.support.fixture_cases import FixtureCase, error_outcome, params, rechunkings

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "responses_over_chat"
CREATED_AT = 1_700_000_000

_encode = msgspec.json.Encoder().encode


def _sse_events(data: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return decoder.feed(data) + decoder.finish()


@dataclass(frozen=True)
class Case(FixtureCase):
    root: ClassVar[Path] = ROOT

    @property
    def dialect(self) -> Dialect:
        return get_dialect(self.path.parent.name)

    @cached_property
    def body(self) -> r.CreateResponseBody:
        return decode_create_response_body((self.path / "request.json").read_bytes())

    @property
    def ends_cleanly(self) -> bool:
        """A stream that reached ``[DONE]`` without an in-band error: it has a non-streaming twin."""
        try:
            payloads = [e.data for e in _sse_events(self.data)]
            errors = [c.decode_chunk_or_error(p) for p in payloads if p != "[DONE]"]
        except msgspec.MsgspecError:
            return True  # let test_stream_equals_completion fail on it, not the collection
        return "[DONE]" in payloads and not any(isinstance(e, c.ChatErrorBody) for e in errors)


CASES = Case.discover()
ERRORS = [case for case in CASES if case.is_error]
STREAMS = [case for case in CASES if not case.is_error and case.is_sse]
COMPLETIONS = [case for case in CASES if not case.is_error and not case.is_sse]
CLEAN_STREAMS = [case for case in STREAMS if case.ends_cleanly]


# ------------------------------------------------------------------------------------- helpers


def _input_items(body: r.CreateResponseBody) -> list[r.ItemParam]:
    assert body.input is not None
    if isinstance(body.input, str):
        return [r.MessageItemParam(role="user", content=body.input)]
    return list(body.input)


def _template(case: Case) -> r.ResponseResource:
    assert case.body.model is not None
    return response_template(case.body, response_id="resp_test", created_at=CREATED_AT, model=case.body.model)


def _run_stream(case: Case, chunks: list[bytes]) -> tuple[list[r.StreamingEvent], r.ResponseResource]:
    stream = ChatToResponsesStream(
        _template(case),
        case.dialect,
        ids=CountingIds(),
        clock=fixed_clock(),
        include_logprobs=wants_logprobs(case.body),
    )
    events = stream.start()
    for chunk in chunks:
        events.extend(stream.feed(chunk))
    events.extend(stream.finish(truncated=b"[DONE]" not in case.data))
    return events, stream.response


def _completion(case: Case, data: bytes) -> r.ResponseResource:
    response, _ = chat_completion_to_response(
        _template(case),
        case.dialect,
        data,
        ids=CountingIds(),
        clock=fixed_clock(),
        include_logprobs=wants_logprobs(case.body),
    )
    return response


def _json(value: Any) -> Any:
    return json.loads(_encode(value))


# --------------------------------------------------------------------------------------- tests


def test_corpus_is_found() -> None:
    assert len(CASES) >= 40, [case.id for case in CASES]


@params(CASES)
def test_folder_layout(case: Case) -> None:
    case.check_layout()
    if not case.is_error:
        # A client that asked to stream is answered from an upstream stream, and vice versa.
        assert bool(case.body.stream) == case.is_sse, f"request.json stream vs {case.upstream.name}"
    assert case.body.model is not None and case.body.input is not None


@params(CASES)
def test_upstream_request(case: Case, snapshot_json: SnapshotAssertion) -> None:
    body = case.body
    assert body.model is not None
    diags = Diagnostics("warn")
    request = to_chat_request(
        body,
        _input_items(body),
        model=body.model,
        dialect=case.dialect,
        diags=diags,
        stream=bool(body.stream),
    )
    assert {
        "upstream_request": json.loads(c.encode_chat_request(request)),
        "diagnostics": _json(diags.items),
    } == snapshot_json


@params(ERRORS)
def test_upstream_error(case: Case, snapshot_json: SnapshotAssertion) -> None:
    assert error_outcome(case) == snapshot_json


@params(STREAMS)
def test_stream(case: Case, snapshot_json: SnapshotAssertion) -> None:
    events, response = _run_stream(case, [case.data])
    raw = [_encode(event) for event in events]
    for item in raw:
        validate_event(item)
    validate_resource(_encode(response))
    decoded = [json.loads(item) for item in raw]
    check_lifecycle(decoded)
    assert decoded == snapshot_json


@params(STREAMS)
def test_stream_survives_any_chunking(case: Case) -> None:
    data = case.data
    expected = _encode(_run_stream(case, [data])[0])
    for label, pieces in rechunkings(data, case.id):
        assert _encode(_run_stream(case, pieces)[0]) == expected, label


@params(CLEAN_STREAMS)
def test_stream_equals_completion(case: Case) -> None:
    """Folding the chunks into one completion and translating it gives the stream's final response.

    Each run gets fresh ``CountingIds``, so item ids match as long as both paths ask for ids in
    the same order; they do for every case here (upstream tool-call ids are passed through).
    """
    _, streamed = _run_stream(case, [case.data])
    chunks = [c.decode_chunk(event.data) for event in _sse_events(case.data) if event.data != "[DONE]"]
    whole = _completion(case, c.encode_completion(accumulate(chunks)))
    fields = ("status", "output", "usage", "incomplete_details", "error", "completed_at")
    assert {f: _json(getattr(whole, f)) for f in fields} == {f: _json(getattr(streamed, f)) for f in fields}


@params(COMPLETIONS)
def test_completion(case: Case, snapshot_json: SnapshotAssertion) -> None:
    response = _completion(case, case.data)
    raw = _encode(response)
    validate_resource(raw)
    assert json.loads(raw) == snapshot_json

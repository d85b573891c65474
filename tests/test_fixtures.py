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
import random
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import msgspec
import pytest
from checks.lifecycle import check_lifecycle
from checks.oracle import validate_event, validate_resource
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from shim.core.diagnostics import Diagnostics
from shim.dialects.model import Dialect
from shim.dialects.registry import get_dialect
from shim.ids import CountingIds, fixed_clock
from shim.sse import SSEDecoder, SSEEvent
from shim.translate.chat_accumulate import accumulate
from shim.translate.chat_request import to_chat_request
from shim.translate.echo import response_template
from shim.translate.pipeline import ChatToResponsesStream, chat_completion_to_response, wants_logprobs
from shim.translate.upstream_errors import upstream_error
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import decode_create_response_body

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "responses_over_chat"
UPSTREAM_NAMES = ("upstream.sse", "upstream.json", "upstream.synthetic.sse", "upstream.synthetic.json")
CASE_TOML_KEYS = {"upstream_status"}
SMALL = 4096  # below this size every 2-way split is tried; above it, RANDOM_SPLITS seeded ones
RANDOM_SPLITS = 200
CREATED_AT = 1_700_000_000

_encode = msgspec.json.Encoder().encode


def _sse_events(data: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return decoder.feed(data) + decoder.finish()


@dataclass(frozen=True)
class Case:
    path: Path

    @property
    def id(self) -> str:
        """``dialect.case``: the folder's relative path, with a separator syrupy can put in a file name."""
        return ".".join(self.path.relative_to(ROOT).parts)

    @property
    def dialect(self) -> Dialect:
        return get_dialect(self.path.parent.name)

    @cached_property
    def upstreams(self) -> list[Path]:
        return [self.path / n for n in UPSTREAM_NAMES if (self.path / n).is_file()]

    @property
    def upstream(self) -> Path:
        """The upstream bytes (``test_folder_layout`` checks there is exactly one such file)."""
        return self.upstreams[0] if self.upstreams else self.path / UPSTREAM_NAMES[1]

    @property
    def data(self) -> bytes:
        return self.upstream.read_bytes()

    @property
    def is_sse(self) -> bool:
        return self.upstream.suffix == ".sse"

    @cached_property
    def settings(self) -> dict[str, Any]:
        toml = self.path / "case.toml"
        return tomllib.loads(toml.read_text("utf-8")) if toml.is_file() else {}

    @property
    def status(self) -> int:
        status = self.settings.get("upstream_status", 200)
        return status if isinstance(status, int) else 200

    @property
    def is_error(self) -> bool:
        return self.status >= 400

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


def _discover() -> list[Case]:
    return [Case(p) for p in sorted(ROOT.glob("*/*")) if p.is_dir()]


CASES = _discover()
ERRORS = [case for case in CASES if case.is_error]
STREAMS = [case for case in CASES if not case.is_error and case.is_sse]
COMPLETIONS = [case for case in CASES if not case.is_error and not case.is_sse]
CLEAN_STREAMS = [case for case in STREAMS if case.ends_cleanly]


def _params(cases: list[Case]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[case.id for case in cases])


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """One ``.json`` file per test and case; syrupy's JSON extension writes keys sorted."""
    return snapshot.use_extension(JSONSnapshotExtension)


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


def _split_points(size: int, seed: str) -> list[int]:
    if size < SMALL:
        return list(range(1, size))
    return sorted(random.Random(seed).sample(range(1, size), RANDOM_SPLITS))


# --------------------------------------------------------------------------------------- tests


def test_corpus_is_found() -> None:
    assert len(CASES) >= 40, [case.id for case in CASES]


@_params(CASES)
def test_folder_layout(case: Case) -> None:
    names = {p.name for p in case.path.iterdir()}
    assert len(case.upstreams) == 1, f"need exactly one of {UPSTREAM_NAMES}, found {sorted(names)}"
    assert names <= {"request.json", "note.md", "case.toml", *UPSTREAM_NAMES}, sorted(names)
    assert (case.path / "note.md").read_text("utf-8").strip(), "note.md says what the case proves"
    assert set(case.settings) <= CASE_TOML_KEYS, f"case.toml: unknown keys {sorted(case.settings)}"
    assert isinstance(case.settings.get("upstream_status", 200), int)
    if case.is_error:
        assert not case.is_sse, "an error body is upstream[.synthetic].json"
    else:
        # A client that asked to stream is answered from an upstream stream, and vice versa.
        assert bool(case.body.stream) == case.is_sse, f"request.json stream vs {case.upstream.name}"
    assert case.body.model is not None and case.body.input is not None


@_params(CASES)
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


@_params(ERRORS)
def test_upstream_error(case: Case, snapshot_json: SnapshotAssertion) -> None:
    error = upstream_error(case.status, case.data)
    assert {"http_status": error.http_status, "envelope": error.envelope()} == snapshot_json


@_params(STREAMS)
def test_stream(case: Case, snapshot_json: SnapshotAssertion) -> None:
    events, response = _run_stream(case, [case.data])
    raw = [_encode(event) for event in events]
    for item in raw:
        validate_event(item)
    validate_resource(_encode(response))
    decoded = [json.loads(item) for item in raw]
    check_lifecycle(decoded)
    assert decoded == snapshot_json


@_params(STREAMS)
def test_stream_survives_any_chunking(case: Case) -> None:
    data = case.data
    expected = _encode(_run_stream(case, [data])[0])
    one_byte = [data[i : i + 1] for i in range(len(data))]
    assert _encode(_run_stream(case, one_byte)[0]) == expected, "1-byte chunks"
    for k in _split_points(len(data), case.id):
        assert _encode(_run_stream(case, [data[:k], data[k:]])[0]) == expected, f"split at byte {k}"


@_params(CLEAN_STREAMS)
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


@_params(COMPLETIONS)
def test_completion(case: Case, snapshot_json: SnapshotAssertion) -> None:
    response = _completion(case, case.data)
    raw = _encode(response)
    validate_resource(raw)
    assert json.loads(raw) == snapshot_json

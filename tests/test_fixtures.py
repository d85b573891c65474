"""Every folder under ``fixtures/responses_over_chat/<dialect>/<case>/`` is a test case.

An Open Responses client (``request.json``) served over a Chat Completions upstream that
answered with the bytes in ``upstream[.synthetic].sse`` / ``.json``. For each folder:

- the Chat request we would send upstream, and the diagnostics, are snapshotted;
- an error body (``case.toml`` ``upstream_status >= 400``) is mapped to the client's error;
- a stream is translated to events, snapshotted, checked against the spec's models and our
  lifecycle rules, re-chunked at every byte boundary (identical events), and folded into one
  completion whose translation must equal the stream's final response;
- a streaming request the dialect sends unstreamed (``stream_auto_tool_choice = false``) gets a
  whole completion, replayed as events (``feed_completion``) and checked like a stream;
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
import pytest
from checks.lifecycle import check_lifecycle
from checks.oracle import validate_event, validate_resource
from syrupy.assertion import SnapshotAssertion

from shim.core.diagnostics import Diagnostics
from shim.dialects.model import Dialect
from shim.dialects.registry import get_dialect
from shim.ids import CountingIds, fixed_clock
from shim.sse import SSEDecoder, SSEEvent
from shim.translate.chat_request import to_chat_request
from shim.translate.echo import response_template
from shim.translate.pipeline import ChatToResponsesStream, chat_completion_to_response, wants_logprobs
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import decode_create_response_body
from tests.support.chat_accumulate import accumulate
from tests.support.fixture_cases import FixtureCase, error_outcome, params, rechunkings

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "responses_over_chat"
CREATED_AT = 1_700_000_000

_encode = msgspec.json.Encoder().encode


def _sse_events(data: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return decoder.feed(data) + decoder.finish()


def _input_items(body: r.CreateResponseBody) -> list[r.ItemParam]:
    assert body.input is not None
    if isinstance(body.input, str):
        return [r.MessageItemParam(role="user", content=body.input)]
    return list(body.input)


@dataclass(frozen=True)
class Case(FixtureCase):
    root: ClassVar[Path] = ROOT

    @property
    def dialect(self) -> Dialect:
        return get_dialect(self.path.parent.name)

    @cached_property
    def body(self) -> r.CreateResponseBody:
        return decode_create_response_body((self.path / "request.json").read_bytes())

    @cached_property
    def upstream_call(self) -> tuple[c.ChatCompletionRequest, Diagnostics]:
        """The Chat request the shim sends upstream for ``request.json``, and its diagnostics."""
        body = self.body
        assert body.model is not None
        diags = Diagnostics("warn")
        request = to_chat_request(
            body,
            _input_items(body),
            model=body.model,
            dialect=self.dialect,
            diags=diags,
            stream=bool(body.stream),
        )
        return request, diags

    @property
    def replays_completion(self) -> bool:
        """The client streams, but the dialect sends this request unstreamed: the whole
        completion is replayed as events (``ChatToResponsesStream.feed_completion``)."""
        return bool(self.body.stream) and not self.upstream_call[0].stream

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
SSE_STREAMS = [case for case in CASES if not case.is_error and case.is_sse]
REPLAYS = [case for case in CASES if not case.is_error and not case.is_sse and case.replays_completion]
STREAMS = [case for case in CASES if case in SSE_STREAMS or case in REPLAYS]
COMPLETIONS = [case for case in CASES if not case.is_error and not case.is_sse and not case.body.stream]
CLEAN_STREAMS = [case for case in SSE_STREAMS if case.ends_cleanly]


# ------------------------------------------------------------------------------------- helpers


def _template(case: Case) -> r.ResponseResource:
    assert case.body.model is not None
    return response_template(case.body, response_id="resp_test", created_at=CREATED_AT, model=case.body.model)


def _stream(case: Case) -> ChatToResponsesStream:
    return ChatToResponsesStream(
        _template(case),
        case.dialect,
        ids=CountingIds(),
        clock=fixed_clock(),
        include_logprobs=wants_logprobs(case.body),
    )


def _run_stream(case: Case, chunks: list[bytes]) -> tuple[list[r.StreamingEvent], r.ResponseResource]:
    stream = _stream(case)
    events = stream.start()
    for chunk in chunks:
        events.extend(stream.feed(chunk))
    events.extend(stream.finish(truncated=b"[DONE]" not in case.data))
    return events, stream.response


def _run_replay(case: Case) -> tuple[list[r.StreamingEvent], r.ResponseResource]:
    """A whole completion answering a streaming client, as the server replays it."""
    stream = _stream(case)
    events = stream.start()
    events.extend(stream.feed_completion(case.data))
    events.extend(stream.finish())
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
    _check_layout(case)


def _check_layout(case: Case) -> None:
    case.check_layout()
    if not case.is_error:
        # The upstream file is what the shim asks for: a stream when the client streams, except
        # where the dialect sends the request unstreamed (stream_auto_tool_choice = false).
        chat_streams = bool(case.upstream_call[0].stream)
        assert chat_streams == case.is_sse, (
            f"request.json stream {bool(case.body.stream)}, chat request stream {chat_streams}, "
            f"vs {case.upstream.name}"
        )
    assert case.body.model is not None and case.body.input is not None


_TOOL = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


@pytest.mark.parametrize(
    ("dialect", "extra", "upstream", "legal"),
    [
        # A streaming client answered by a whole body: only where the dialect unstreams the request.
        ("llamacpp-python-functions", {"tools": [_TOOL], "tool_choice": "auto"}, "upstream.json", True),
        ("llamacpp-python-functions", {"tools": [_TOOL]}, "upstream.json", True),  # "auto" implied
        ("llamacpp-python-functions", {"tools": [_TOOL], "tool_choice": "auto"}, "upstream.sse", False),
        ("llamacpp-python-functions", {"tools": [_TOOL], "tool_choice": "none"}, "upstream.json", False),
        ("llamacpp-python-functions", {}, "upstream.json", False),
        ("llamacpp", {"tools": [_TOOL], "tool_choice": "auto"}, "upstream.json", False),
        ("llamacpp", {"tools": [_TOOL], "tool_choice": "auto"}, "upstream.sse", True),
    ],
)
def test_layout_streaming_request_with_whole_body(
    tmp_path: Path, dialect: str, extra: dict[str, Any], upstream: str, legal: bool
) -> None:
    folder = tmp_path / dialect / "case"
    folder.mkdir(parents=True)
    body = {"model": "m", "input": "hi", "stream": True, **extra}
    (folder / "request.json").write_text(json.dumps(body))
    (folder / "note.md").write_text("synthetic layout check")
    (folder / upstream).write_text("{}")
    if legal:
        _check_layout(Case(folder))
    else:
        with pytest.raises(AssertionError, match="chat request stream"):
            _check_layout(Case(folder))


@params(CASES)
def test_upstream_request(case: Case, snapshot_json: SnapshotAssertion) -> None:
    request, diags = case.upstream_call
    assert {
        "upstream_request": json.loads(c.encode_chat_request(request)),
        "diagnostics": _json(diags.items),
    } == snapshot_json


@params(ERRORS)
def test_upstream_error(case: Case, snapshot_json: SnapshotAssertion) -> None:
    assert error_outcome(case) == snapshot_json


@params(STREAMS)
def test_stream(case: Case, snapshot_json: SnapshotAssertion) -> None:
    events, response = _run_replay(case) if case.replays_completion else _run_stream(case, [case.data])
    raw = [_encode(event) for event in events]
    for item in raw:
        validate_event(item)
    validate_resource(_encode(response))
    decoded = [json.loads(item) for item in raw]
    check_lifecycle(decoded)
    assert decoded == snapshot_json


@params(SSE_STREAMS)
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


@params(REPLAYS)
def test_replay_equals_completion(case: Case) -> None:
    """A replayed completion ends in the same response as the same bytes read as a whole body."""
    _, replayed = _run_replay(case)
    whole = _completion(case, case.data)
    assert _json(replayed) == _json(whole)


@params(COMPLETIONS)
def test_completion(case: Case, snapshot_json: SnapshotAssertion) -> None:
    response = _completion(case, case.data)
    raw = _encode(response)
    validate_resource(raw)
    assert json.loads(raw) == snapshot_json

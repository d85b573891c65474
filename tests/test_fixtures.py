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
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from checks.lifecycle import check_lifecycle
from checks.oracle import validate_event, validate_resource
from syrupy.assertion import SnapshotAssertion

from shim.fixtures.responses_case import ResponsesCase
from tests.support.fixture_cases import params

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "responses_over_chat"

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Case(ResponsesCase):
    root: ClassVar[Path] = ROOT


CASES = Case.discover()
ERRORS = [case for case in CASES if case.kind == "error"]
SSE_STREAMS = [case for case in CASES if case.kind == "stream"]
REPLAYS = [case for case in CASES if case.kind == "replay"]
STREAMS = [case for case in CASES if case.kind in ("stream", "replay")]
COMPLETIONS = [case for case in CASES if case.kind == "completion"]
CLEAN_STREAMS = [case for case in SSE_STREAMS if case.ends_cleanly]


# --------------------------------------------------------------------------------------- tests


def test_corpus_is_found() -> None:
    assert len(CASES) >= 40, [case.id for case in CASES]


@params(CASES)
def test_folder_layout(case: Case) -> None:
    case.check_layout()


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
        Case(folder).check_layout()
    else:
        with pytest.raises(AssertionError, match="chat request stream"):
            Case(folder).check_layout()


@params(CASES)
def test_upstream_request(case: Case, snapshot_json: SnapshotAssertion) -> None:
    assert case.upstream_request() == snapshot_json


@params(ERRORS)
def test_upstream_error(case: Case, snapshot_json: SnapshotAssertion) -> None:
    assert case.outcomes()["upstream_error"] == snapshot_json


@params(STREAMS)
def test_stream(case: Case, snapshot_json: SnapshotAssertion) -> None:
    events, response = case.events()
    raw = [_encode(event) for event in events]
    for item in raw:
        validate_event(item)
    validate_resource(_encode(response))
    decoded = [json.loads(item) for item in raw]
    check_lifecycle(decoded)
    assert decoded == case.outcomes()["stream"]
    assert decoded == snapshot_json


@params(SSE_STREAMS)
def test_stream_survives_any_chunking(case: Case) -> None:
    case.check_any_chunking()


@params(CLEAN_STREAMS)
def test_stream_equals_completion(case: Case) -> None:
    """Folding the chunks into one completion and translating it gives the stream's final response."""
    case.check_stream_equals_completion()


@params(REPLAYS)
def test_replay_equals_completion(case: Case) -> None:
    """A replayed completion ends in the same response as the same bytes read as a whole body."""
    case.check_replay_equals_completion()


@params(COMPLETIONS)
def test_completion(case: Case, snapshot_json: SnapshotAssertion) -> None:
    response = case.completion(case.data)
    raw = _encode(response)
    validate_resource(raw)
    assert json.loads(raw) == case.outcomes()["completion"]
    assert json.loads(raw) == snapshot_json

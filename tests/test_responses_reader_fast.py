"""The Open Responses reader's short decoding of ``response.output_text.delta`` events
(``_TextEv``) against the long one (``_Ev``): the same deltas, or the same failure, for every
event of the fixture corpus and for generated ones (extra, missing and ill-typed fields)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.core.deltas import Delta
from shim.fixtures.cases import sse_events
from shim.translate import responses_reader
from shim.translate.responses_reader import ResponsesStreamReader

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "chat_over_responses"
STREAMS = sorted(ROOT.rglob("upstream*.sse"))
TEXT_DELTA = "response.output_text.delta"


def test_shared_fields_have_the_long_decoders_types_and_defaults() -> None:
    long = {f.name: f for f in msgspec.structs.fields(responses_reader._Ev)}
    for field in msgspec.structs.fields(responses_reader._TextEv):
        if field.name in long:
            assert (field.type, field.default) == (long[field.name].type, long[field.name].default), (
                field.name
            )
        else:  # a field _Ev ignores: any value at all
            assert field.type is Any, field.name


def outcome(
    events: list[tuple[str | None, str]], *, short: bool, monkeypatch: pytest.MonkeyPatch
) -> list[Any]:
    with monkeypatch.context() as patch:
        if not short:
            patch.setattr(responses_reader, "_TEXT_DELTA", "(never)")
        reader = ResponsesStreamReader()
        out: list[Delta | str] = []
        for event_type, data in events:
            try:
                out += reader.feed(event_type, data)
            except msgspec.DecodeError:
                out.append("DecodeError")
        return out


def test_corpus_has_streams() -> None:
    assert len(STREAMS) >= 10


@pytest.mark.parametrize("path", STREAMS, ids=[str(p.relative_to(ROOT)) for p in STREAMS])
def test_recorded_streams_read_the_same(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = [(e.event, e.data) for e in sse_events(path.read_bytes()) if e.data != "[DONE]"]
    assert outcome(events, short=True, monkeypatch=monkeypatch) == outcome(
        events, short=False, monkeypatch=monkeypatch
    )


VALUES: dict[str, list[Any]] = {
    "type": [TEXT_DELTA, "", "response.refusal.delta", 5],
    "sequence_number": [3, "x", None, [1]],
    "item_id": ["msg_1", None, 5],
    "output_index": [0, 2, "0", None],
    "content_index": [0, 1, None],
    "delta": [" tok", "", None, 7],
    "logprobs": [
        [],
        None,
        [{"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}],
        [{"token": 1}],
    ],
    "obfuscation": ["abc", 1],
    "text": ["whole"],
    "foo": [{"bar": 1}],
}


@st.composite
def text_event(draw: st.DrawFn) -> tuple[str | None, str]:
    fields = {key: draw(st.sampled_from(values)) for key, values in VALUES.items() if draw(st.booleans())}
    event_type = draw(st.sampled_from([TEXT_DELTA, TEXT_DELTA, None, "response.output_text.done"]))
    return event_type, json.dumps(fields)


@settings(max_examples=300)
@given(st.lists(text_event(), max_size=8))
def test_generated_events_read_the_same(events: list[tuple[str | None, str]]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert outcome(events, short=True, monkeypatch=monkeypatch) == outcome(
            events, short=False, monkeypatch=monkeypatch
        )

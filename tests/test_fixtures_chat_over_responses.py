"""Every folder under ``fixtures/chat_over_responses/<source>/<case>/`` is a test case.

A Chat Completions client (``request.json``) served over an Open Responses upstream that
answered with the bytes in ``upstream[.synthetic].sse`` / ``.json``. ``<source>`` names who sent
the bytes (``shim-llamacpp``: recorded; ``openai``, ``open-responses``: hand-made in that
provider's shape). ``case.toml`` may say ``upstream_status`` (an error body), ``reasoning``
(how the client wants reasoning: ``reasoning_content`` | ``reasoning`` | ``think_tags``),
``client_error`` (a 200 body the shim must refuse: the error code the client gets) and
``terminal_response = "unfaithful"`` (the terminal event's response does not repeat what was
streamed, so it cannot stand in for a whole body; the test proves it really differs).

Per folder: the Responses request we send upstream and its diagnostics are snapshotted; an
error body is mapped to the client's envelope; a stream is translated to Chat chunks (each
validated with the openai SDK's own ``ChatCompletionChunk`` model), snapshotted, re-chunked at
every byte boundary (identical chunks), and its completion must equal the non-streaming
translation of the terminal event's response; a whole body is translated and snapshotted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from syrupy.assertion import SnapshotAssertion

from shim.fixtures.chat_case import ChatCase
from shim.wire import chat as c
from tests.support.fixture_cases import UPSTREAM_NAMES, params

openai_types = pytest.importorskip("openai.types.chat")
from openai.types.chat.chat_completion_message_custom_tool_call import Custom as CUSTOM_CALL  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "chat_over_responses"


@dataclass(frozen=True)
class Case(ChatCase):
    root: ClassVar[Path] = ROOT


CASES = Case.discover()
ERRORS = [case for case in CASES if case.kind == "error"]
STREAMS = [case for case in CASES if case.kind == "stream"]
COMPLETIONS = [case for case in CASES if case.kind == "completion"]
TERMINALS = [case for case in STREAMS if case.terminal_response() is not None]


def validate_chunk(raw: bytes) -> None:
    """The chunk against the SDK's ``ChatCompletionChunk``. openai-python 3.63 types a streamed
    tool call as a function call only: a ``custom`` call's delta (``type: "custom"``, ``custom:
    {name, input}`` first, then ``{input}`` pieces) is checked against the SDK's model of a whole
    custom call (``Custom``: name and input) instead, and the rest of the chunk as usual."""
    data = json.loads(raw)
    for choice in data.get("choices") or []:
        for call in (choice.get("delta") or {}).get("tool_calls") or []:
            custom = call.pop("custom", None)
            if custom is None:
                continue
            if call.pop("type", "custom") != "custom":
                raise AssertionError(f"a custom delta typed otherwise: {call}")
            if "name" in custom:
                CUSTOM_CALL.model_validate(custom)
            else:
                assert list(custom) == ["input"] and isinstance(custom["input"], str), custom
    openai_types.ChatCompletionChunk.model_validate(data)


def test_corpus_is_found() -> None:
    assert len(CASES) >= 20, [case.id for case in CASES]
    assert any(u.name in UPSTREAM_NAMES[:2] for case in CASES for u in case.upstreams), "no recorded case"


@params(CASES)
def test_folder_layout(case: Case) -> None:
    case.check_layout()


@params(CASES)
def test_upstream_request(case: Case, snapshot_json: SnapshotAssertion) -> None:
    assert case.upstream_request() == snapshot_json


@params(ERRORS)
def test_upstream_error(case: Case, snapshot_json: SnapshotAssertion) -> None:
    assert case.outcomes()["upstream_error"] == snapshot_json


@params(STREAMS)
def test_stream(case: Case, snapshot_json: SnapshotAssertion) -> None:
    raw, _ = case.run_stream([case.data])
    for chunk in raw:
        validate_chunk(chunk)
    assert case.stream_outcome() == snapshot_json


@params(STREAMS)
def test_stream_survives_any_chunking(case: Case) -> None:
    case.check_any_chunking()


@params([case for case in TERMINALS if case.terminal_faithful])
def test_stream_equals_completion(case: Case) -> None:
    """The terminal event's whole response, read as a non-streaming body, gives the same completion."""
    case.check_stream_equals_completion()


@params([case for case in TERMINALS if not case.terminal_faithful])
def test_unfaithful_terminal_response(case: Case) -> None:
    """A case that opts out of the check above must really need to (its terminal response is
    refused or gives a different completion)."""
    case.check_unfaithful_terminal()


@params(COMPLETIONS)
def test_completion(case: Case, snapshot_json: SnapshotAssertion) -> None:
    outcome: Any = case.completion_outcome()
    if case.client_error is not None:  # a 200 body that is no response: the client gets an error
        assert "error" in outcome and outcome["error"]["code"] == case.client_error
    else:
        assert "error" not in outcome
        openai_types.ChatCompletion.model_validate_json(json.dumps(outcome))
    assert outcome == snapshot_json
    assert c is not None

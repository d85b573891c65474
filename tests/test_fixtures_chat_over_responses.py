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
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from syrupy.assertion import SnapshotAssertion

from shim.core.diagnostics import Diagnostics
from shim.sse import SSEDecoder
from shim.translate.chat_over_responses import ChatChoiceDriver
from shim.translate.chat_writer import ReasoningMode
from shim.translate.responses_request import encode_create_response_body, to_responses_request
from shim.translate.stop_sequences import stop_list
from shim.wire import chat as c
from tests.support.fixture_cases import UPSTREAM_NAMES, FixtureCase, error_outcome, params, rechunkings

openai_types = pytest.importorskip("openai.types.chat")
from openai.types.chat.chat_completion_message_custom_tool_call import Custom as CUSTOM_CALL  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "chat_over_responses"
CREATED = 1_700_000_000

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Case(FixtureCase):
    root: ClassVar[Path] = ROOT
    toml_keys: ClassVar[frozenset[str]] = frozenset(
        {"upstream_status", "reasoning", "client_error", "terminal_response"}
    )

    @property
    def reasoning(self) -> ReasoningMode:
        mode: ReasoningMode = self.settings.get("reasoning", "reasoning_content")
        return mode

    @cached_property
    def request(self) -> c.ChatCompletionRequest:
        return c.decode_chat_request((self.path / "request.json").read_bytes())

    @property
    def client_error(self) -> str | None:
        code = self.settings.get("client_error")
        return code if isinstance(code, str) else None

    @property
    def terminal_faithful(self) -> bool:
        return self.settings.get("terminal_response", "faithful") == "faithful"

    def driver(self) -> ChatChoiceDriver:
        req = self.request
        options = req.stream_options
        return ChatChoiceDriver(
            completion_id="chatcmpl_test",
            created=CREATED,
            model=req.model,
            reasoning=self.reasoning,
            include_usage=bool(options is not None and options.include_usage),
            stops=stop_list(req.stop),
        )


CASES = Case.discover()
ERRORS = [case for case in CASES if case.is_error]
STREAMS = [case for case in CASES if not case.is_error and case.is_sse]
COMPLETIONS = [case for case in CASES if not case.is_error and not case.is_sse]


def _run_stream(case: Case, pieces: list[bytes]) -> tuple[list[bytes], ChatChoiceDriver]:
    driver = case.driver()
    chunks = driver.start()
    for piece in pieces:
        chunks += driver.feed(piece)
        if driver.stopped:  # the server closes the upstream here
            break
    chunks += driver.finish(truncated=not driver.stopped)
    return [c.encode_chunk(chunk) for chunk in chunks], driver


def _terminal_response(data: bytes) -> dict[str, Any] | None:
    decoder = SSEDecoder()
    for event in decoder.feed(data) + decoder.finish():
        payload = json.loads(event.data)
        if (
            payload.get("type") in ("response.completed", "response.incomplete")
            and payload["response"]["output"]
        ):
            return dict(payload["response"])
    return None


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
    assert case.settings.get("terminal_response", "faithful") in ("faithful", "unfaithful")
    assert case.client_error is None or not (case.is_sse or case.is_error), "client_error: 200 bodies"
    if not case.is_error:
        assert bool(case.request.stream) == case.is_sse, "request.json stream vs the upstream file"


@params(CASES)
def test_upstream_request(case: Case, snapshot_json: SnapshotAssertion) -> None:
    diags = Diagnostics("warn")
    req = case.request
    body = to_responses_request(req, model=req.model, diags=diags, stream=bool(req.stream))
    assert {
        "upstream_request": json.loads(encode_create_response_body(body)),
        "diagnostics": json.loads(_encode(diags.items)),
    } == snapshot_json


@params(ERRORS)
def test_upstream_error(case: Case, snapshot_json: SnapshotAssertion) -> None:
    assert error_outcome(case) == snapshot_json


@params(STREAMS)
def test_stream(case: Case, snapshot_json: SnapshotAssertion) -> None:
    raw, driver = _run_stream(case, [case.data])
    for chunk in raw:
        validate_chunk(chunk)
    outcome: Any = (
        {"error": json.loads(_encode(driver.error))}
        if driver.error is not None
        else {"completion": json.loads(c.encode_completion(driver.completion))}
    )
    assert {"chunks": [json.loads(x) for x in raw], **outcome} == snapshot_json


@params(STREAMS)
def test_stream_survives_any_chunking(case: Case) -> None:
    data = case.data
    expected = _run_stream(case, [data])[0]
    for label, pieces in rechunkings(data, case.id):
        assert _run_stream(case, pieces)[0] == expected, label


def _stream_and_terminal(case: Case) -> tuple[ChatChoiceDriver, ChatChoiceDriver]:
    _, streamed = _run_stream(case, [case.data])
    whole = case.driver()
    whole.read_body(_encode(_terminal_response(case.data)))
    return streamed, whole


TERMINALS = [case for case in STREAMS if _terminal_response(case.data) is not None]


@params([case for case in TERMINALS if case.terminal_faithful])
def test_stream_equals_completion(case: Case) -> None:
    """The terminal event's whole response, read as a non-streaming body, gives the same completion."""
    streamed, whole = _stream_and_terminal(case)
    assert whole.error is None and streamed.error is None
    assert c.encode_completion(whole.completion) == c.encode_completion(streamed.completion)
    assert whole.reasoning_items() == streamed.reasoning_items()


@params([case for case in TERMINALS if not case.terminal_faithful])
def test_unfaithful_terminal_response(case: Case) -> None:
    """A case that opts out of the check above must really need to: its stream reads cleanly, and
    its terminal response, read as a whole body, is refused or gives a different completion."""
    streamed, whole = _stream_and_terminal(case)
    assert streamed.error is None
    assert whole.error is not None or c.encode_completion(whole.completion) != c.encode_completion(
        streamed.completion
    )


@params(COMPLETIONS)
def test_completion(case: Case, snapshot_json: SnapshotAssertion) -> None:
    driver = case.driver()
    driver.read_body(case.data)
    if case.client_error is not None:  # a 200 body that is no response: the client gets an error
        assert driver.error is not None and driver.error.code == case.client_error
        assert {"error": json.loads(_encode(driver.error))} == snapshot_json
        return
    assert driver.error is None
    raw = c.encode_completion(driver.completion)
    openai_types.ChatCompletion.model_validate_json(raw)
    assert json.loads(raw) == snapshot_json

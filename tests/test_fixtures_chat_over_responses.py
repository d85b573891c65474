"""Every folder under ``fixtures/chat_over_responses/<source>/<case>/`` is a test case.

A Chat Completions client (``request.json``) served over an Open Responses upstream that
answered with the bytes in ``upstream[.synthetic].sse`` / ``.json``. ``<source>`` names who sent
the bytes (``shim-llamacpp``: recorded; ``openai``, ``open-responses``: hand-made in that
provider's shape). ``case.toml`` may say ``upstream_status`` (an error body) and ``reasoning``
(how the client wants reasoning: ``reasoning_content`` | ``reasoning`` | ``think_tags``).

Per folder: the Responses request we send upstream and its diagnostics are snapshotted; an
error body is mapped to the client's envelope; a stream is translated to Chat chunks (each
validated with the openai SDK's own ``ChatCompletionChunk`` model), snapshotted, re-chunked at
every byte boundary (identical chunks), and its completion must equal the non-streaming
translation of the terminal event's response; a whole body is translated and snapshotted.
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
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from shim.core.diagnostics import Diagnostics
from shim.sse import SSEDecoder
from shim.translate.chat_over_responses import ChatChoiceDriver
from shim.translate.chat_writer import ReasoningMode
from shim.translate.responses_request import encode_create_response_body, to_responses_request
from shim.translate.stop_sequences import stop_list
from shim.translate.upstream_errors import upstream_error
from shim.wire import chat as c

openai_types = pytest.importorskip("openai.types.chat")

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "chat_over_responses"
UPSTREAM_NAMES = ("upstream.sse", "upstream.json", "upstream.synthetic.sse", "upstream.synthetic.json")
CASE_TOML_KEYS = {"upstream_status", "reasoning"}
SMALL = 4096
RANDOM_SPLITS = 200
CREATED = 1_700_000_000

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Case:
    path: Path

    @property
    def id(self) -> str:
        return ".".join(self.path.relative_to(ROOT).parts)

    @cached_property
    def upstreams(self) -> list[Path]:
        return [self.path / n for n in UPSTREAM_NAMES if (self.path / n).is_file()]

    @property
    def data(self) -> bytes:
        """The upstream bytes (``test_folder_layout`` checks there is exactly one such file)."""
        return self.upstreams[0].read_bytes() if self.upstreams else b""

    @property
    def is_sse(self) -> bool:
        return bool(self.upstreams) and self.upstreams[0].suffix == ".sse"

    @cached_property
    def settings(self) -> dict[str, Any]:
        toml = self.path / "case.toml"
        return tomllib.loads(toml.read_text("utf-8")) if toml.is_file() else {}

    @property
    def status(self) -> int:
        return int(self.settings.get("upstream_status", 200))

    @property
    def reasoning(self) -> ReasoningMode:
        mode: ReasoningMode = self.settings.get("reasoning", "reasoning_content")
        return mode

    @cached_property
    def request(self) -> c.ChatCompletionRequest:
        return c.decode_chat_request((self.path / "request.json").read_bytes())

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


CASES = [Case(p) for p in sorted(ROOT.glob("*/*")) if p.is_dir()]
ERRORS = [case for case in CASES if case.status >= 400]
STREAMS = [case for case in CASES if case.status < 400 and case.is_sse]
COMPLETIONS = [case for case in CASES if case.status < 400 and not case.is_sse]


def _params(cases: list[Case]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[case.id for case in cases])


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


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


def _split_points(size: int, seed: str) -> list[int]:
    if size < SMALL:
        return list(range(1, size))
    return sorted(random.Random(seed).sample(range(1, size), RANDOM_SPLITS))


def test_corpus_is_found() -> None:
    assert len(CASES) >= 20, [case.id for case in CASES]
    assert any(u.name in UPSTREAM_NAMES[:2] for case in CASES for u in case.upstreams), "no recorded case"


@_params(CASES)
def test_folder_layout(case: Case) -> None:
    names = {p.name for p in case.path.iterdir()}
    assert len(case.upstreams) == 1, f"need exactly one of {UPSTREAM_NAMES}, found {sorted(names)}"
    assert names <= {"request.json", "note.md", "case.toml", *UPSTREAM_NAMES}, sorted(names)
    assert (case.path / "note.md").read_text("utf-8").strip()
    assert set(case.settings) <= CASE_TOML_KEYS, sorted(case.settings)
    if case.status < 400:
        assert bool(case.request.stream) == case.is_sse, "request.json stream vs the upstream file"
    else:
        assert not case.is_sse


@_params(CASES)
def test_upstream_request(case: Case, snapshot_json: SnapshotAssertion) -> None:
    diags = Diagnostics("warn")
    req = case.request
    body = to_responses_request(req, model=req.model, diags=diags, stream=bool(req.stream))
    assert {
        "upstream_request": json.loads(encode_create_response_body(body)),
        "diagnostics": json.loads(_encode(diags.items)),
    } == snapshot_json


@_params(ERRORS)
def test_upstream_error(case: Case, snapshot_json: SnapshotAssertion) -> None:
    error = upstream_error(case.status, case.data)
    assert {"http_status": error.http_status, "envelope": error.envelope()} == snapshot_json


@_params(STREAMS)
def test_stream(case: Case, snapshot_json: SnapshotAssertion) -> None:
    raw, driver = _run_stream(case, [case.data])
    for chunk in raw:
        openai_types.ChatCompletionChunk.model_validate_json(chunk)
    outcome: Any = (
        {"error": json.loads(_encode(driver.error))}
        if driver.error is not None
        else {"completion": json.loads(c.encode_completion(driver.completion))}
    )
    assert {"chunks": [json.loads(x) for x in raw], **outcome} == snapshot_json


@_params(STREAMS)
def test_stream_survives_any_chunking(case: Case) -> None:
    data = case.data
    expected = _run_stream(case, [data])[0]
    assert _run_stream(case, [data[i : i + 1] for i in range(len(data))])[0] == expected, "1-byte chunks"
    for k in _split_points(len(data), case.id):
        assert _run_stream(case, [data[:k], data[k:]])[0] == expected, f"split at byte {k}"


@_params([case for case in STREAMS if _terminal_response(case.data) is not None])
def test_stream_equals_completion(case: Case) -> None:
    """The terminal event's whole response, read as a non-streaming body, gives the same completion."""
    _, streamed = _run_stream(case, [case.data])
    whole = case.driver()
    whole.read_body(_encode(_terminal_response(case.data)))
    assert whole.error is None and streamed.error is None
    assert c.encode_completion(whole.completion) == c.encode_completion(streamed.completion)
    assert whole.reasoning_items() == streamed.reasoning_items()


@_params(COMPLETIONS)
def test_completion(case: Case, snapshot_json: SnapshotAssertion) -> None:
    driver = case.driver()
    driver.read_body(case.data)
    assert driver.error is None
    raw = c.encode_completion(driver.completion)
    openai_types.ChatCompletion.model_validate_json(raw)
    assert json.loads(raw) == snapshot_json

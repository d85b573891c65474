"""``shim serve --record DIR`` then ``shim fixtures check DIR``: recorded cases replay offline.

Each row is one exchange over a scripted upstream (Chat or Responses), recorded by the real app
and checked by the real command. A changed dialect setting must make the check fail with a diff
naming the event that changed; a secret must appear nowhere under the record folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shim.cli import main
from shim.dialects import registry
from shim.fixtures import responses_case
from shim.fixtures.check import check_cases
from shim.fixtures.exchange import ClientRequest, Exchange
from shim.fixtures.recorder import Recorder, _folder_size
from shim.settings import RecordSettings
from tests.recording.support import RecordingShim
from tests.support.scripted_chat import app as scripted_chat
from tests.support.scripted_responses import ScriptedResponses

_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
_CHAT_TOOL = {"type": "function", "function": {k: v for k, v in _TOOL.items() if k != "type"}}
HELLO = [{"role": "user", "content": "Hello"}]

ROWS: list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, str]]] = [
    # (id, path, route, body, headers)
    (
        "responses-stream",
        "/v1/responses",
        {"dialect": "openai"},
        {"model": "m", "input": "Hi", "stream": True},
        {},
    ),
    ("responses-whole", "/v1/responses", {"dialect": "openai"}, {"model": "m", "input": "Hi"}, {}),
    (
        "responses-tool-stream",
        "/v1/responses",
        {"dialect": "vllm"},
        {"model": "m", "input": "Weather in Paris?", "tools": [_TOOL], "stream": True},
        {},
    ),
    (
        "responses-route-policies",
        "/v1/responses",
        {"dialect": "llamacpp", "model": "gemma-upstream", "max_output_tokens": 7, "temperature": 0.0},
        {"model": "m", "input": "Hi", "stream": True},
        {},
    ),
    (
        "chat-stream",
        "/v1/chat/completions",
        {"kind": "responses"},
        {"model": "m", "messages": HELLO, "stream": True},
        {},
    ),
    (
        "chat-stream-usage-think-tags",
        "/v1/chat/completions",
        {"kind": "responses"},
        {"model": "m", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}},
        {"x-shim-reasoning": "think_tags"},
    ),
    (
        "chat-think-tags-history",
        "/v1/chat/completions",
        {"kind": "responses"},
        {
            "model": "m",
            "messages": [*HELLO, {"role": "assistant", "content": "<think>A greeting.</think>Hi!"}, *HELLO],
            "stream": True,
        },
        {"x-shim-reasoning": "think_tags"},
    ),
    (
        "chat-stateful-route",
        "/v1/chat/completions",
        {"kind": "responses", "stateful": True, "continue_upstream": True},
        {"model": "m", "messages": HELLO},
        {},
    ),
    (
        "responses-store-false-sealed",
        "/v1/responses",
        {"dialect": "openai"},
        {
            "model": "m",
            "input": "Hi",
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "stream": True,
        },
        {},
    ),
    ("chat-whole", "/v1/chat/completions", {"kind": "responses"}, {"model": "m", "messages": HELLO}, {}),
    (
        "chat-tools",
        "/v1/chat/completions",
        {"kind": "responses"},
        {"model": "m", "messages": HELLO, "tools": [_CHAT_TOOL], "stream": True},
        {},
    ),
]


def _upstream(route: dict[str, Any]) -> Any:
    if route.get("kind") == "responses":
        return ScriptedResponses(reasoning=["Let me ", "think."])
    return scripted_chat


async def _record(
    tmp_path: Path, path: str, route: dict[str, Any], body: dict[str, Any], headers: dict[str, str]
) -> tuple[Path, int]:
    folder = tmp_path / "recorded"
    shim = RecordingShim(_upstream(route), folder, route=route)
    try:
        response = await shim.client.post(path, json=body, headers=headers)
        await shim.written()
    finally:
        await shim.aclose()
    return folder, response.status_code


@pytest.mark.parametrize(
    ("path", "route", "body", "headers"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
async def test_recorded_case_round_trips(
    tmp_path: Path,
    path: str,
    route: dict[str, Any],
    body: dict[str, Any],
    headers: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _ = await _record(tmp_path, path, route, body, headers)
    cases = [p for p in folder.glob("*/*/*") if p.is_dir()]
    assert len(cases) == 1, cases
    names = {p.name for p in cases[0].iterdir()}
    assert {"request.json", "upstream_request.json", "note.md"} <= names
    assert names & {"client.sse", "client.json"} and names & {"upstream.sse", "upstream.json"}
    reports = list(check_cases(folder))
    assert [r.problems for r in reports] == [[]]
    assert reports[0].expectation == "recorded"
    assert main(["fixtures", "check", str(folder)]) == 0
    assert "1 cases, 0 differ" in capsys.readouterr().out


async def _refusing(scope: Any, receive: Any, send: Any) -> None:
    """An upstream that refuses every request with a 400 in OpenAI's envelope."""
    if scope["type"] != "http":
        return
    body = {"error": {"message": "max_tokens is too large", "type": "invalid_request_error", "code": None}}
    await send(
        {"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@pytest.mark.parametrize(
    ("path", "route", "body"),
    [
        ("/v1/responses", {"dialect": "openai"}, {"model": "m", "input": "Hi", "stream": True}),
        ("/v1/responses", {"dialect": "openai"}, {"model": "m", "input": "Hi"}),
        ("/v1/chat/completions", {"kind": "responses"}, {"model": "m", "messages": HELLO, "stream": True}),
    ],
)
async def test_upstream_error_case_round_trips(
    tmp_path: Path, path: str, route: dict[str, Any], body: dict[str, Any]
) -> None:
    folder = tmp_path / "recorded"
    shim = RecordingShim(_refusing, folder, route=route)
    try:
        response = await shim.client.post(path, json=body)
        await shim.written()
    finally:
        await shim.aclose()
    assert response.status_code == 400
    (case,) = [p for p in folder.glob("*/*/*") if p.is_dir()]
    assert (case / "upstream.json").is_file() and (case / "client.json").is_file()
    assert "upstream_status = 400" in (case / "case.toml").read_text()
    assert [r.problems for r in check_cases(folder)] == [[]]


def _think_inside(name: str) -> Any:
    dialect = registry.default_registry()[name]
    response = msgspec.structs.replace(dialect.response, think_tags=True, think_start_inside=True)
    return msgspec.structs.replace(dialect, response=response)


async def test_changed_dialect_setting_fails_with_a_diff_naming_the_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = await _record(
        tmp_path, "/v1/responses", {"dialect": "openai"}, {"model": "m", "input": "Hi", "stream": True}, {}
    )
    assert main(["fixtures", "check", str(folder)]) == 0
    capsys.readouterr()
    # The dialect now says the output starts inside <think>: the text becomes reasoning.
    monkeypatch.setattr(responses_case, "get_dialect", _think_inside)
    assert main(["fixtures", "check", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "client output differs" in out
    assert "event 2 (response.output_item.added)" in out
    assert '"type": "message"' in out and '+    "type": "reasoning"' in out
    assert "1 cases, 1 differ" in out
    # --update accepts the new translation; the check passes again.
    assert main(["fixtures", "check", "--update", str(folder)]) == 0
    assert main(["fixtures", "check", str(folder)]) == 0


async def test_a_changed_upstream_request_is_a_difference(tmp_path: Path) -> None:
    folder, _ = await _record(
        tmp_path, "/v1/responses", {"dialect": "openai"}, {"model": "m", "input": "Hi"}, {}
    )
    (case,) = [p for p in folder.glob("*/*/*") if p.is_dir()]
    sent = json.loads((case / "upstream_request.json").read_bytes())
    sent["messages"][0]["content"] = "Something else"
    (case / "upstream_request.json").write_text(json.dumps(sent))
    (report,) = check_cases(folder)
    assert len(report.problems) == 1 and report.problems[0].startswith("upstream request differs")
    assert '"content": "Something else"' in report.problems[0]


SECRET_UPSTREAM = "sk-upstream-9f8e7d6c5b4a39281706"
SECRET_CLIENT = "sk-shim-client-0a1b2c3d4e5f6a7b8c9d"
SECRET_HEADER = "hdr-value-5e6f7a8b9c0d1e2f"


async def test_no_secret_reaches_the_record_folder(tmp_path: Path) -> None:
    """The upstream echoes everything it was sent (headers included) into its answer; none of
    the credentials, the shim's keys or configured header values may reach the disk."""

    async def echoing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        text = f"auth={headers.get('authorization')} extra={headers.get('x-org')} key tail {SECRET_UPSTREAM[-8:]}"
        chunk = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}],
        }
        end = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        raw = f"data: {json.dumps(chunk)}\n\n".encode()
        # The key is cut in two chunks on its way back: it must still be found.
        cut = (
            raw.index(SECRET_UPSTREAM[:6].encode()) + 3
            if SECRET_UPSTREAM[:6].encode() in raw
            else len(raw) // 2
        )
        for piece in (raw[:cut], raw[cut:], f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode()):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    folder = tmp_path / "recorded"
    route = {"dialect": "openai", "api_key": SECRET_UPSTREAM, "headers": {"X-Org": SECRET_HEADER}}
    shim = RecordingShim(echoing, folder, route=route, api_keys=(SECRET_CLIENT,))
    try:
        body = {"model": "m", "input": f"my key is {SECRET_CLIENT}", "stream": True}
        response = await shim.client.post(
            "/v1/responses", json=body, headers={"authorization": f"Bearer {SECRET_CLIENT}"}
        )
        assert response.status_code == 200
        await shim.written()
    finally:
        await shim.aclose()
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "upstream.sse" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in (
            SECRET_UPSTREAM,
            SECRET_CLIENT,
            SECRET_HEADER,
            SECRET_UPSTREAM[-8:],
            SECRET_CLIENT[-8:],
            b"test-secret",
        ):
            needle = secret.encode() if isinstance(secret, str) else secret
            assert needle not in data, f"{path.name} holds a secret"
    (case,) = [p for p in folder.glob("*/*/*") if p.is_dir()]
    assert b"[redacted]" in (case / "upstream.sse").read_bytes()
    assert "redactions: " in (case / "note.md").read_text()


async def test_filters_and_sampling(tmp_path: Path) -> None:
    folder = tmp_path / "recorded"
    shim = RecordingShim(scripted_chat, folder, route={"dialect": "openai"})
    shim.recorder.settings = msgspec.structs.replace(
        shim.recorder.settings, models=("keep-*",), statuses=("2*",)
    )
    try:
        for model in ("keep-1", "drop-1", "keep-2"):
            await shim.client.post("/v1/responses", json={"model": model, "input": "Hi"})
        shim.recorder.rng = lambda: 0.99
        shim.recorder.settings = msgspec.structs.replace(shim.recorder.settings, sample=0.5)
        await shim.client.post("/v1/responses", json={"model": "keep-4", "input": "Hi"})
        await shim.written()
    finally:
        await shim.aclose()
    names = sorted(p.name.split("-", 1)[1] for p in folder.glob("*/*/*"))
    assert [n.rsplit("-", 1)[0] for n in names] == ["keep-1", "keep-2"]


@pytest.mark.parametrize(
    ("filters", "path", "model", "status", "wanted"),
    [
        ({}, "/v1/responses", "m", 200, True),
        ({"statuses": ("2*",)}, "/v1/responses", "m", 502, False),
        ({"statuses": ("2*", "5*")}, "/v1/responses", "m", 502, True),
        ({"routes": ("/v1/chat/*",)}, "/v1/responses", "m", 200, False),
        ({"routes": ("/v1/chat/*",)}, "/v1/chat/completions", "m", 200, True),
        ({"models": ("gpt-*",)}, "/v1/responses", "llama", 200, False),
    ],
)
def test_filter_table(filters: dict[str, Any], path: str, model: str, status: int, wanted: bool) -> None:
    recorder = Recorder(RecordSettings(dir="unused", **filters))
    exchange = Exchange(
        "x1", 0.0, client=ClientRequest("POST", path, {}, json.dumps({"model": model}).encode())
    )
    exchange.status = status
    assert recorder._wanted(exchange) is wanted


async def test_size_caps(tmp_path: Path) -> None:
    folder = tmp_path / "recorded"
    shim = RecordingShim(scripted_chat, folder, route={"dialect": "openai"})
    try:
        shim.recorder.settings = msgspec.structs.replace(shim.recorder.settings, max_case_bytes=100)
        await shim.client.post("/v1/responses", json={"model": "m", "input": "Hi"})
        await shim.written()
        assert not list(folder.glob("*/*/*")) and shim.recorder.dropped == 1
        shim.recorder.settings = msgspec.structs.replace(
            shim.recorder.settings, max_case_bytes=10**6, max_total_bytes=5000
        )
        for _ in range(5):
            await shim.client.post("/v1/responses", json={"model": "m", "input": "Hi"})
        await shim.written()
    finally:
        await shim.aclose()
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert 0 < total <= 5000 and shim.recorder.dropped >= 3


async def test_off_by_default(tmp_path: Path) -> None:
    shim = RecordingShim(scripted_chat, None, route={"dialect": "openai"})
    assert not hasattr(shim.app.state, "recorder")
    assert (await shim.client.get("/inspector")).status_code == 404
    await shim.client.aclose()
    await shim.upstream.aclose()


def test_project_corpus_gives_the_suites_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    """``shim fixtures check fixtures/`` compares the corpus with the suite's own snapshots."""
    root = Path(__file__).resolve().parents[2] / "fixtures"
    assert main(["fixtures", "check", str(root)]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    from tests.test_fixtures import CASES as FORWARD
    from tests.test_fixtures_chat_over_responses import CASES as BACKWARD

    assert out == f"{len(FORWARD) + len(BACKWARD)} cases, 0 differ"


async def test_a_turn_leaning_on_remembered_reasoning_is_not_written(tmp_path: Path) -> None:
    """The second turn gets the first turn's reasoning back from the shim's memory: replaying it
    would need that memory, so only the first turn becomes a case."""
    folder = tmp_path / "recorded"
    shim = RecordingShim(
        ScriptedResponses(reasoning=["Let me ", "think."]), folder, route={"kind": "responses"}
    )
    try:
        first = (
            await shim.client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO})
        ).json()
        again = [*HELLO, {"role": "assistant", "content": first["choices"][0]["message"]["content"]}, *HELLO]
        await shim.client.post("/v1/chat/completions", json={"model": "m", "messages": again})
        await shim.written()
    finally:
        await shim.aclose()
    cases = [p for p in folder.glob("*/*/*") if p.is_dir()]
    assert len(cases) == 1
    assert len(json.loads((cases[0] / "request.json").read_bytes())["messages"]) == 1
    assert [r.problems for r in check_cases(folder)] == [[]]


def test_a_changed_snapshot_fails_the_check_as_it_fails_the_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corpus case checked against snapshots (``--snapshots``): a changed event is named, and
    ``--update`` writes the snapshot back byte for byte as syrupy wrote it."""
    repo = Path(__file__).resolve().parents[2]
    case = "openai/crlf_line_endings"
    shutil.copytree(
        repo / "fixtures" / "responses_over_chat" / case, tmp_path / "corpus" / "responses_over_chat" / case
    )
    snaps = tmp_path / "snaps" / "test_fixtures"
    snaps.mkdir(parents=True)
    for path in (repo / "tests" / "__snapshots__" / "test_fixtures").glob(
        "*[[]openai.crlf_line_endings[]].json"
    ):
        shutil.copy(path, snaps / path.name)
    stream = snaps / "test_stream[openai.crlf_line_endings].json"
    original = stream.read_bytes()
    args = ["fixtures", "check", str(tmp_path / "corpus"), "--snapshots", str(tmp_path / "snaps")]
    assert main(args) == 0
    events = json.loads(original)
    events[-1]["type"] = "response.incomplete"
    stream.write_text(json.dumps(events))
    capsys.readouterr()
    assert main(args) == 1
    out = capsys.readouterr().out
    assert (
        f"event {len(events) - 1} (response.incomplete) -> event {len(events) - 1} (response.completed)"
        in out
    )
    assert main([*args, "--update"]) == 0
    assert stream.read_bytes() == original


async def _lifespan(app: Any, *events: str) -> list[str]:
    """Drive the app's ASGI lifespan through ``events`` as a server does; the answers it sent."""
    incoming = [{"type": f"lifespan.{event}"} for event in events]
    answers: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        answers.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return answers


async def test_shutdown_writes_what_is_still_queued(tmp_path: Path) -> None:
    """A server stopped right after answering still writes the case: the shutdown hook drains the
    queue (it once took the app for its timeout, failed, and dropped the last cases)."""
    folder = tmp_path / "recorded"
    shim = RecordingShim(scripted_chat, folder, route={})
    try:
        answer = await shim.client.post("/v1/responses", json={"model": "m", "input": "Hi"})
        assert answer.status_code == 200
        assert await _lifespan(shim.app, "startup", "shutdown") == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert len([p for p in folder.glob("*/*/*") if p.is_dir()]) == 1
    finally:
        await shim.client.aclose()
        await shim.upstream.aclose()


def test_folder_size_ignores_what_another_writer_renames_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two shims (or two workers) recording into one folder: the other's staging folder can
    vanish between being listed and being read. CI once lost a case this way (the whole write
    failed with FileNotFoundError)."""
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "a.json").write_bytes(b"12345")
    gone = tmp_path / ".tmp-other"
    gone.mkdir()
    (gone / "b.json").write_bytes(b"123")
    (tmp_path / "kept" / "c.json").write_bytes(b"1234567")
    real_scandir, real_stat = os.scandir, os.stat

    def scandir(path: Any = ".") -> Any:
        if Path(path) == gone:
            raise FileNotFoundError(2, "renamed by the other writer", str(path))
        return real_scandir(path)

    def stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == "c.json":
            raise FileNotFoundError(2, "removed by the other writer", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat)
    assert _folder_size(tmp_path) == 5

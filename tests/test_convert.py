"""``shim convert``: detection, both directions, JSONL, bad input, atomic output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from shim.cli.command import main
from shim.cli.convert import detect_kind

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "fixtures" / "_recordings" / "llamacpp"

CHAT_SSE = (
    'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}\n\n'
    'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    "data: [DONE]\n\n"
)

KINDS = [
    ('{"model":"m","messages":[{"role":"user","content":"hi"}]}', "chat-request"),
    ('{"id":"c","object":"chat.completion","choices":[]}', "chat-completion"),
    (CHAT_SSE, "chat-stream"),
    ('{"model":"m","input":"hi"}', "responses-request"),
    ('{"id":"r","object":"response","status":"completed","output":[]}', "responses-resource"),
    ('event: response.created\ndata: {"type":"response.created"}\n\n', "responses-stream"),
]


@pytest.mark.parametrize(("text", "kind"), KINDS, ids=[k for _, k in KINDS])
def test_detect_kind(text: str, kind: str) -> None:
    assert detect_kind(text) == kind


def run(tmp_path: Path, text: str, *args: str) -> tuple[int, Path]:
    src = tmp_path / "in.txt"
    src.write_text(text)
    out = tmp_path / "out.txt"
    code = main(["convert", str(src), "-o", str(out), *args])
    return code, out


def test_responses_request_to_chat(tmp_path: Path) -> None:
    code, out = run(
        tmp_path,
        '{"model":"m","input":"hi","instructions":"be brief"}',
        "--to",
        "chat",
        "--dialect",
        "llamacpp",
    )
    assert code == 0
    assert json.loads(out.read_text()) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
    }


def test_chat_stream_to_responses_stream(tmp_path: Path) -> None:
    code, out = run(tmp_path, CHAT_SSE, "--to", "responses")
    assert code == 0
    text = out.read_text()
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert [e["type"] for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hi"
    assert text.endswith("data: [DONE]\n\n")


@pytest.mark.skipif(not RECORDINGS.exists(), reason="recordings not present")
def test_recorded_completion_to_resource(tmp_path: Path) -> None:
    code, out = run(
        tmp_path, (RECORDINGS / "plain_text.json").read_text(), "--to", "responses", "--dialect", "llamacpp"
    )
    assert code == 0
    resource = json.loads(out.read_text())
    assert resource["object"] == "response" and resource["output"][0]["type"] == "message"


def test_jsonl_converts_record_by_record(tmp_path: Path) -> None:
    lines = ['{"model":"m","input":"one"}', '{"model":"m","input":"two"}']
    code, out = run(tmp_path, "\n".join(lines) + "\n", "--to", "chat")
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][0]["content"][0]["text"] for r in records] == ["one", "two"]


BAD = [
    ('{"model":"m","input":"ok"}\n{"model":"m","input":[{"role":"user","content":5}]}\n', "chat", ":2: "),
    ("not json at all", "chat", ":1: "),
    ('{"model":"m","messages":[]}', "chat", "already in the chat format"),
]


@pytest.mark.parametrize(("text", "to", "message"), BAD, ids=["jsonl-line-2", "garbage", "same-format"])
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, to: str, message: str
) -> None:
    code, out = run(tmp_path, text, "--to", to)
    assert code == 2
    assert not out.exists()
    assert message in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.txt")]


def test_diagnostics_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(tmp_path, '{"model":"m","input":"hi","tools":[{"type":"web_search"}]}', "--to", "chat")
    assert code == 0
    assert "unsupported_tool" in capsys.readouterr().err


# --- values that must come from the input, not placeholders -----------------------------------------------

RESPONSES_SSE = (
    "event: response.created\n"
    'data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_up","object":"response",'
    '"created_at":1700000000,"model":"up-model","status":"in_progress","output":[]}}\n\n'
    "event: response.output_text.delta\n"
    'data: {"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,'
    '"content_index":0,"delta":"Hi","logprobs":[]}\n\n'
    "event: response.completed\n"
    'data: {"type":"response.completed","sequence_number":2,"response":{"id":"resp_up","object":"response",'
    '"created_at":1700000000,"model":"up-model","status":"completed","output":[]}}\n\n'
    "data: [DONE]\n\n"
)
CHAT_SSE_WITH_MODEL = (
    'data: {"id":"c","object":"chat.completion.chunk","created":1700000001,"model":"chat-model",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}\n\n'
    'data: {"id":"c","object":"chat.completion.chunk","created":1700000001,"model":"chat-model",'
    '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    "data: [DONE]\n\n"
)
RESPONSES_RESOURCE = (
    '{"id":"resp_up","object":"response","created_at":1700000002,"model":"res-model","status":"completed",'
    '"output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant",'
    '"content":[{"type":"output_text","text":"Hi","annotations":[]}]}]}'
)
CHAT_COMPLETION = (
    '{"id":"c","object":"chat.completion","created":1700000003,"model":"cc-model","choices":[{"index":0,'
    '"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}'
)


def _data_objects(text: str) -> list[dict[str, object]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def _stream_chunks(text: str) -> list[tuple[object, object]]:
    return [(chunk["model"], chunk["created"]) for chunk in _data_objects(text)]


def _stream_resources(text: str) -> list[tuple[object, object]]:
    resources = [e["response"] for e in _data_objects(text) if "response" in e]
    return [(r["model"], r["created_at"]) for r in resources]  # type: ignore[index]


def _one(text: str) -> list[tuple[object, object]]:
    body = json.loads(text)
    return [(body["model"], body.get("created", body.get("created_at")))]


# (input, --to, how to read (model, created) pairs from the output, what every pair must be)
FROM_INPUT = [
    ("responses-stream", RESPONSES_SSE, "chat", _stream_chunks, ("up-model", 1700000000)),
    ("chat-stream", CHAT_SSE_WITH_MODEL, "responses", _stream_resources, ("chat-model", 1700000001)),
    ("responses-resource", RESPONSES_RESOURCE, "chat", _one, ("res-model", 1700000002)),
    ("chat-completion", CHAT_COMPLETION, "responses", _one, ("cc-model", 1700000003)),
]


@pytest.mark.parametrize(
    ("text", "to", "read", "expected"), [case[1:] for case in FROM_INPUT], ids=[c[0] for c in FROM_INPUT]
)
def test_model_and_created_come_from_the_input(
    tmp_path: Path,
    text: str,
    to: str,
    read: Callable[[str], list[tuple[object, object]]],
    expected: tuple[str, int],
) -> None:
    code, out = run(tmp_path, text, "--to", to)
    assert code == 0
    pairs = read(out.read_text())
    assert pairs, "no output objects"
    assert set(pairs) == {expected}

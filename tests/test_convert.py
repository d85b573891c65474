"""``shim convert``: detection, both directions, JSONL, bad input, atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shim.cli import main
from shim.convert import detect_kind

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

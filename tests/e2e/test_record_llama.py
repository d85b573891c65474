"""Recording real traffic: ``shim serve --record DIR`` in front of the real llama upstream, then
``shim fixtures check DIR`` replays every case offline and finds no difference.

Both directions: an Open Responses client over llama's Chat API, and a Chat client over a second
shim that speaks Open Responses upstream (the first shim, in front of llama), recorded there.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from shim.cli import main
from shim.cli.embedded import DIALECT
from tests.e2e.conftest import MODEL
from tests.support.processes import serve_shim

_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
RESPONSES = [
    {"model": MODEL, "input": "Say hello in three words.", "max_output_tokens": 16, "stream": True},
    {"model": MODEL, "input": "Name a colour.", "max_output_tokens": 8},
    {
        "model": MODEL,
        "input": "What is the weather in Paris?",
        "tools": [_TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "max_output_tokens": 48,
        "stream": True,
    },
]
CHAT = [
    {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 12, "stream": True},
    {"model": MODEL, "messages": [{"role": "user", "content": "Count to three."}], "max_tokens": 12},
]


def test_recorded_llama_traffic_checks_clean(
    llama_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "recorded"
    (tmp_path / "front").mkdir()
    (tmp_path / "back").mkdir()
    front = serve_shim(
        tmp_path / "front", "--upstream", llama_url, "--dialect", DIALECT, "--store", "memory://",
        "--record", str(record),
    )  # fmt: skip
    try:
        back = serve_shim(
            tmp_path / "back", "--upstream", front.base_url, "--upstream-kind", "responses",
            "--store", "memory://", "--record", str(record),
        )  # fmt: skip
        try:
            with httpx.Client(timeout=120) as client:
                for body in RESPONSES:
                    answer = client.post(f"{front.base_url}/responses", json=body)
                    assert answer.status_code == 200, answer.text
                for body in CHAT:
                    answer = client.post(f"{back.base_url}/chat/completions", json=body)
                    assert answer.status_code == 200, answer.text
        finally:
            back.stop()  # a stopped server has written every queued case
    finally:
        front.stop()

    forward = sorted(p for p in (record / "responses_over_chat").glob("*/*") if p.is_dir())
    backward = sorted(p for p in (record / "chat_over_responses").glob("*/*") if p.is_dir())
    # The front shim also served the back shim's two requests: Open Responses over llama.
    assert len(forward) == len(RESPONSES) + len(CHAT) and len(backward) == len(CHAT)
    streamed = [p for p in forward if (p / "upstream.sse").is_file()]
    assert any(len(json.loads((p / "upstream.chunks.json").read_bytes())) > 1 for p in streamed)
    capsys.readouterr()
    assert main(["fixtures", "check", "-v", str(record)]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert f"{len(forward) + len(backward)} cases, 0 differ" in out

"""Context limits over the real llama.cpp upstreams, started with a small context so that a long
conversation overflows at once: llama-cpp-python (512 tokens) and llama-server (1024 tokens, one
slot), each behind a recording proxy and a real ``shim serve``.

- ``truncation: "disabled"``: the vendor's own overflow answer (llama-cpp-python's OpenAI-shaped
  400, llama-server's ``exceed_context_size_error`` with ``code: 400``) reaches the client as one
  400 ``context_length_exceeded``;
- ``truncation: "auto"``: the same conversation completes, the oldest turns dropped (the proxy
  shows the refused request and the smaller one that was answered);
- a route with ``context_window``: trimmed before sending, so a streamed turn completes with one
  upstream request (llama-cpp-python refuses an overflowing *stream* with an empty 200, which no
  error rule can read);
- ``context_management``: past the threshold the chain is compacted first and the turn answers
  from the summary; the next turn continues from it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shim.cli.embedded import DIALECT, MODEL_ALIAS
from tests.support.llama_server import DIALECT as LLAMA_SERVER_DIALECT
from tests.support.processes import Served, serve_shim
from tests.support.real_components import running_llama, running_llama_server
from tests.support.recording_proxy import RecordingProxy

SETTINGS: dict[str, Any] = {"temperature": 0, "max_output_tokens": 8}
UPSTREAMS = {"llama-cpp-python": (DIALECT, 512), "llama-server": (LLAMA_SERVER_DIALECT, 1024)}
WINDOWED = "windowed"  # the model name routed with `context_window`


@dataclass
class Setup:
    shim: Served
    proxy: RecordingProxy

    def post(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.shim.base_url}/responses", json={**SETTINGS, **body}, timeout=300)


@pytest.fixture(scope="module", params=sorted(UPSTREAMS))
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    dialect, n_ctx = UPSTREAMS[request.param]
    workdir = tmp_path_factory.mktemp(f"context-{request.param}")
    if request.param == "llama-server":
        upstream = running_llama_server(workdir / "upstream.log", n_ctx=n_ctx, parallel=1)
    else:
        upstream = running_llama(workdir / "upstream.log", n_ctx=n_ctx)
    with upstream as url, RecordingProxy(url) as proxy:
        config = workdir / "shim.toml"
        config.write_text(
            f'[[routes]]\nmatch = "{WINDOWED}"\nupstream = "{proxy.url}"\ndialect = "{dialect}"\n'
            f'model = "{MODEL_ALIAS}"\ncontext_window = {n_ctx}\n\n'
            f'[[routes]]\nmatch = "*"\nupstream = "{proxy.url}"\ndialect = "{dialect}"\n'
            f'model = "{MODEL_ALIAS}"\n'
        )
        shim = serve_shim(workdir, "--config", str(config), "--store", "memory://", timeout=60)
        try:
            yield Setup(shim, proxy)
        finally:
            shim.stop()


def _history(turns: int) -> list[dict[str, Any]]:
    """A system message, ``turns`` old turns of about 130 tokens each, then the question."""
    items: list[dict[str, Any]] = [{"role": "system", "content": "Answer briefly."}]
    for n in range(turns):
        items += [
            {"role": "user", "content": f"Note {n}: " + "the river runs past the old mill " * 15},
            {"role": "assistant", "content": f"Noted {n}."},
        ]
    return [*items, {"role": "user", "content": "What did the first note say?"}]


def _texts(body: dict[str, Any]) -> list[str]:
    out = []
    for message in body["messages"]:
        content = message.get("content")
        out.append(content if isinstance(content, str) else "".join(p.get("text", "") for p in content or ()))
    return out


def test_disabled_overflow_is_context_length_exceeded(setup: Setup) -> None:
    before = len(setup.proxy.exchanges)
    answer = setup.post({"model": MODEL_ALIAS, "input": _history(12)})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["type"], error["param"]) == (
        "context_length_exceeded",
        "invalid_request_error",
        "input",
    )
    exchanges = setup.proxy.exchanges[before:]
    assert [e.status for e in exchanges] == [400]  # the vendor's own refusal, sent once


def test_auto_drops_the_oldest_turns_and_completes(setup: Setup) -> None:
    before = len(setup.proxy.exchanges)
    answer = setup.post({"model": MODEL_ALIAS, "input": _history(12), "truncation": "auto"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] in ("completed", "incomplete")  # 8 tokens may cut it
    exchanges = setup.proxy.exchanges[before:]
    assert exchanges[0].status == 400 and exchanges[-1].status == 200
    assert 2 <= len(exchanges) <= 4
    answered = json.loads(exchanges[-1].request)
    texts = _texts(answered)
    assert texts[-1] == "What did the first note say?"
    assert not any(t.startswith("Note 0:") for t in texts)
    assert len(answered["messages"]) < len(json.loads(exchanges[0].request)["messages"])


def test_context_window_trims_a_stream_before_sending(setup: Setup) -> None:
    before = len(setup.proxy.exchanges)
    with httpx.stream(
        "POST",
        f"{setup.shim.base_url}/responses",
        json={**SETTINGS, "model": WINDOWED, "input": _history(12), "truncation": "auto", "stream": True},
        timeout=300,
    ) as answer:
        text = answer.read().decode()
    assert answer.status_code == 200, text
    assert "response.completed" in text or "response.incomplete" in text, text[-500:]
    deadline = time.monotonic() + 10  # the proxy records a relayed stream once it has ended
    while len(setup.proxy.exchanges) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    exchanges = setup.proxy.exchanges[before:]
    assert [e.status for e in exchanges] == [200]  # one request: the estimate was enough


def summarise_request(setup: Setup, before: int) -> bytes:
    return setup.proxy.exchanges[before].request


def test_compaction_past_the_threshold(setup: Setup) -> None:
    first = setup.post({"model": MODEL_ALIAS, "input": _history(2)})
    assert first.status_code == 200, first.text
    before = len(setup.proxy.exchanges)
    management = [{"type": "compaction", "compact_threshold": 150}]
    second = setup.post(
        {
            "model": MODEL_ALIAS,
            "input": "Go on.",
            "previous_response_id": first.json()["id"],
            "context_management": management,
            "max_output_tokens": 16,
        }
    )
    assert second.status_code == 200, second.text
    summarise, turn = (json.loads(e.request) for e in setup.proxy.exchanges[before:])
    assert "compacting the conversation" in _texts(summarise)[-1]
    assert any(t.startswith("Summary of the earlier conversation") for t in _texts(turn))
    assert _texts(turn)[-1] == "Go on."
    third = setup.post(
        {"model": MODEL_ALIAS, "input": "Thanks.", "previous_response_id": second.json()["id"]}
    )
    assert third.status_code == 200, third.text
    continued = json.loads(setup.proxy.exchanges[-1].request)
    assert any(t.startswith("Summary of the earlier conversation") for t in _texts(continued))
    # the model's own earlier answers are in the summary now (user messages are kept verbatim:
    # mappings/prompts/compaction.toml, keep_user_messages)
    assert "Noted 0." not in _texts(continued) and "Noted 0." in _texts(
        json.loads(summarise_request(setup, before))
    )

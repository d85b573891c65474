"""Chains of shims over the real llama.cpp upstream: the output equals the direct path.

- Chat chain: a Chat client → shim A (``--upstream-kind responses``) → shim B (chat route) →
  llama. Shim A translates Chat → Open Responses, shim B translates back; at temperature 0 the
  text and finish reason equal what llama gives the same Chat request directly.
- Reverse chain: a Responses client → shim X (chat route over shim A's Chat endpoint) → shim A →
  shim B → llama equals the Responses client → shim B directly.

Every shim is a real ``python -m shim serve`` process (see ``conftest.py``). llama-cpp-python
is deterministic at temperature 0 only once a prompt is in its cache (the very first evaluation
of a prompt can differ), so the direct answer is taken from a second identical request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import MODEL, ShimServer, _start_shim, output_text

PROMPTS = ["Say hello.", "Count to five.", "What is the capital of France?"]


@pytest.fixture(scope="module")
def shim_a(shim: ShimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    """A shim whose upstream is shim B's Open Responses endpoint."""
    server = _start_shim(
        shim.base_url, "openai", tmp_path_factory.mktemp("shim-a"), ("--upstream-kind", "responses")
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shim_x(shim_a: ShimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimServer]:
    """A shim whose upstream is shim A's Chat Completions endpoint (a chat route)."""
    server = _start_shim(shim_a.base_url, "openai", tmp_path_factory.mktemp("shim-x"))
    yield server
    server.stop()


def _chat(base: str, prompt: str, **extra: Any) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": 16,
    }
    response = httpx.post(f"{base}/chat/completions", json={**body, **extra}, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _reference(base: str, prompt: str, **extra: Any) -> dict[str, Any]:
    """The direct answer, once the prompt is warm in llama's cache."""
    _chat(base, prompt, **extra)
    return _chat(base, prompt, **extra)


def _chat_stream(base: str, prompt: str) -> tuple[str, str | None]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": 16,
        "stream": True,
    }
    text, finish = [], None
    with httpx.stream("POST", f"{base}/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = httpx.Response(200, content=line[6:]).json()
            for choice in chunk["choices"]:
                text.append(choice["delta"].get("content") or "")
                finish = choice["finish_reason"] or finish
    return "".join(text), finish


@pytest.mark.parametrize("prompt", PROMPTS)
def test_chat_chain_equals_direct(llama_url: str, shim_a: ShimServer, prompt: str) -> None:
    direct = _reference(llama_url, prompt)["choices"][0]
    chained = _chat(shim_a.base_url, prompt)["choices"][0]
    assert chained["message"]["content"] == direct["message"]["content"]
    assert chained["finish_reason"] == direct["finish_reason"]


def test_chat_chain_stream_equals_direct(llama_url: str, shim_a: ShimServer) -> None:
    direct = _reference(llama_url, PROMPTS[0])["choices"][0]
    text, finish = _chat_stream(shim_a.base_url, PROMPTS[0])
    assert (text, finish) == (direct["message"]["content"], direct["finish_reason"])


def test_chat_chain_stop_sequence(llama_url: str, shim_a: ShimServer) -> None:
    direct = _reference(llama_url, PROMPTS[1])["choices"][0]["message"]["content"]
    cut = direct.strip().split(" ")[-1] if " " in direct.strip() else direct.strip()[-1:]
    assert cut, direct
    chained = _chat(shim_a.base_url, PROMPTS[1], stop=[cut])["choices"][0]
    assert chained["message"]["content"] == direct[: direct.find(cut)]
    assert chained["finish_reason"] == "stop"


def test_responses_reverse_chain_equals_direct(shim: ShimServer, shim_x: ShimServer) -> None:
    body = {"model": MODEL, "input": PROMPTS[2], "temperature": 0, "max_output_tokens": 16}
    httpx.post(f"{shim.base_url}/responses", json=body, timeout=120)  # warm the prompt
    direct = httpx.post(f"{shim.base_url}/responses", json=body, timeout=120).json()
    chained = httpx.post(f"{shim_x.base_url}/responses", json=body, timeout=120).json()
    assert output_text(chained) == output_text(direct) and output_text(direct)
    assert chained["status"] == direct["status"]

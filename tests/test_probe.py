"""The dialect probe: the decision over recorded and hand-made vendor answers, and the thin probe
against the real llama-cpp-python upstream, the scripted upstream and a shim started without
``--dialect``.

Recordings in ``fixtures/probe/`` are made by ``scripts/record_probe.py``; hand-made answers
(the vendor's documented shapes) are named ``*.synthetic.json``.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from shim.dialects.registry import default_registry
from shim.upstream.probe import Answer, choose_dialect, probe, probe_urls
from tests.support.processes import serve_script, serve_shim
from tests.support.real_components import running_llama

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "probe"
SCRIPTED_CHAT = Path(__file__).resolve().parent / "support" / "scripted_chat.py"
LOCAL = "http://127.0.0.1:8000/v1"

# fixture -> (base URL, dialect, guess, words of the reason)
CASES = {
    "llamacpp-python": (LOCAL, "llamacpp-python", False, 'owned_by "me"'),
    "llama-server.synthetic": (LOCAL, "llamacpp", False, "/props"),
    "vllm.synthetic": (LOCAL, "vllm", False, 'owned_by "vllm"'),
    "ollama.synthetic": ("http://127.0.0.1:11434/v1", "ollama", False, "/api/version"),
    "lmstudio.synthetic": ("http://127.0.0.1:1234/v1", "lmstudio", False, "organization_owner"),
    "anonymous.synthetic": (LOCAL, "openai", True, 'server header "nginx"'),
    "no-v1.synthetic": ("http://127.0.0.1:8000", "openai", True, "/models answered HTTP 404"),
    "down.synthetic": (LOCAL, "openai", True, "did not answer"),
    # a hosted API is known by its host when its answers say nothing
    "anonymous.synthetic@openrouter": ("https://openrouter.ai/api/v1", "openrouter", False, "openrouter.ai"),
    "down.synthetic@deepseek": ("https://api.deepseek.com/v1", "deepseek", False, "api.deepseek.com"),
}


def _answers(name: str) -> dict[str, Answer]:
    data = (FIXTURES / f"{name.partition('@')[0]}.json").read_bytes()
    return msgspec.json.decode(data, type=dict[str, Answer])


@pytest.mark.parametrize("name", CASES, ids=CASES)
def test_choose_dialect(name: str) -> None:
    base_url, dialect, guess, why = CASES[name]
    choice = choose_dialect(base_url, _answers(name))
    assert (choice.dialect, choice.guess) == (dialect, guess)
    assert why in choice.reason
    assert choice.dialect in default_registry()


def test_every_fixture_is_in_the_table() -> None:
    names = {p.name.removesuffix(".json") for p in FIXTURES.glob("*.json")}
    assert names == {name.partition("@")[0] for name in CASES}


def test_probe_urls_hang_off_the_root() -> None:
    assert probe_urls("http://h:1/v1/") == {
        "models": "http://h:1/v1/models",
        "props": "http://h:1/props",
        "version": "http://h:1/version",
        "api_version": "http://h:1/api/version",
    }


def test_probe_of_the_scripted_upstream_is_a_guess(tmp_path: Path) -> None:
    served = serve_script(SCRIPTED_CHAT, tmp_path / "scripted.log", what="scripted upstream")
    try:
        choice = probe(served.base_url)
    finally:
        served.stop()
    assert (choice.dialect, choice.guess) == ("openai", True)
    assert 'server header "uvicorn"' in choice.reason


def test_probe_of_the_real_llama_upstream(tmp_path: Path) -> None:
    with running_llama(tmp_path / "llama.log") as url:
        choice = probe(url)
    assert (choice.dialect, choice.guess) == ("llamacpp-python", False)
    assert "llamacpp-python-functions" in choice.reason  # the format the probe cannot see


def test_a_shim_without_dialect_says_what_it_chose(tmp_path: Path) -> None:
    upstream = serve_script(SCRIPTED_CHAT, tmp_path / "scripted.log", what="scripted upstream")
    try:
        shim = serve_shim(tmp_path, "--upstream", upstream.base_url)
        shim.stop()
    finally:
        upstream.stop()
    log = shim.log_tail()
    assert f"upstream {upstream.base_url}: dialect openai (detected: " in log
    assert "shim: warning: the dialect 'openai' for" in log and "is a guess" in log

"""What the two LangChain test modules share: ``langchain_openai`` (or a skip naming its package;
the modules import LangChain's names from here, after that check), the ``get_weather`` tool, and
``offline``, an autouse fixture each module imports: nothing may reach the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import require_module

langchain_openai = require_module("langchain_openai", "langchain-openai")

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402

__all__ = [
    "AIMessage",
    "AIMessageChunk",
    "HumanMessage",
    "ToolMessage",
    "get_weather",
    "langchain_openai",
    "offline",
]


@tool
def get_weather(city: str) -> str:
    """The weather for a city."""
    return f"Sunny and 21 C in {city}"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No tiktoken download (LangChain only needs it to count tokens, which these tests never do:
    an attempt fails the test) and no LangSmith tracing."""
    tiktoken_load = require_module("tiktoken.load", "tiktoken")

    def refuse(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to fetch {blobpath}")

    monkeypatch.setattr(tiktoken_load, "read_file", refuse)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    for name in ("LANGCHAIN_TRACING_V2", "LANGSMITH_TRACING", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)

"""The llama-cpp-python command line the embedded upstream runs: its chat format is a choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.cli.embedded import CHAT_FORMAT, FUNCTIONS_CHAT_FORMAT, server_argv


@pytest.mark.parametrize(
    ("options", "chat_format"),
    [({}, CHAT_FORMAT), ({"chat_format": FUNCTIONS_CHAT_FORMAT}, FUNCTIONS_CHAT_FORMAT)],
    ids=["default-gemma", "function-calling"],
)
def test_server_argv_chat_format(options: dict[str, str], chat_format: str) -> None:
    argv = server_argv(Path("/m.gguf"), port=9, n_ctx=16384, **options)
    assert argv[argv.index("--chat_format") + 1] == chat_format
    assert argv[argv.index("--n_ctx") + 1] == "16384"
    assert argv.count("--chat_format") == 1

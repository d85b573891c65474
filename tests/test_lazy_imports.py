"""Start-up memory: the server's app is built without importing what only some requests or some
configurations use (each costs every worker memory for as long as it runs; bench/README.md,
issue 18). Checked in a fresh interpreter, with the app built as ``shim serve`` builds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> what pulls it in only when it is needed. (Not opentelemetry: Litestar tries its own
# plugin whenever the package is installed, and gives up without the instrumentation package.)
LAZY = {
    "mcp": "a request with a hosted MCP tool (with pydantic, starlette, jsonschema)",
    "redis": "a redis:// store",
    "rich": "httpx's command-line tool, never used",
    "pygments": "httpx's command-line tool, never used",
}

_PROBE = """
import json, sys
import shim.cli.command
from shim.http.app import create_app
from shim.settings import load_settings
create_app(load_settings(upstream="http://127.0.0.1:9/v1", dialect="openai", kind="chat", store="memory://"))
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("package", sorted(LAZY))
def test_the_app_starts_without(package: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHIM_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    assert package not in loaded, f"{package} is imported at start-up; it is only needed for {LAZY[package]}"

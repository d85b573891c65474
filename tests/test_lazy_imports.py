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
    "cryptography": "a sealed blob (`include: reasoning.encrypted_content`, or one sent back)",
    "mcp": "a hosted MCP server that speaks only the legacy SSE transport (with pydantic, starlette)",
    "redis": "a redis:// store",
    "pydantic": "the MCP SDK (Litestar would add its pydantic plugins whenever pydantic can be imported)",
    "sqlite3": "a diskcache:// store (this probe's store is memory://)",
    "rich": "httpx's command-line tool, never used",
    "pygments": "httpx's command-line tool, never used",
}

_PROBE = """
import json, sys
import shim.cli.command
from shim.http.app import create_app, app_state
from shim.settings import load_settings
app = create_app(load_settings(upstream="http://127.0.0.1:9/v1", dialect="openai", kind="chat", store="memory://"))
{use}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""

# Each lazily loaded feature used once the app is built: it works, and loads its package then.
_SEAL = """
sealer = app_state(app).turns.sealer
blob = sealer.seal("reasoning", "scope", b"thought")
assert blob.startswith("shim1.") and sealer.open("reasoning", "scope", blob) == b"thought"
"""


def _loaded_at_start(tmp_path: Path, use: str = "", **variables: str) -> set[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SHIM_")}
    env.update(PYTHONPATH=str(ROOT), SHIM_DATA_DIR=str(tmp_path), **variables)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(use=use)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("package", sorted(LAZY))
def test_the_app_starts_without(package: str, tmp_path: Path) -> None:
    loaded = _loaded_at_start(tmp_path)
    assert package not in loaded, f"{package} is imported at start-up; it is only needed for {LAZY[package]}"


def test_with_hosted_tools_configured_the_mcp_client_loads_at_start(tmp_path: Path) -> None:
    """An operator who allows hosted MCP servers pays the import of the shim's MCP client (and
    jsonschema, for tools' structured outputs) at start-up, not a client on its first hosted-tool
    request; the ``mcp`` SDK loads only for a server that needs the SSE fallback."""
    loaded = _loaded_at_start(tmp_path, SHIM_MCP_ALLOW="https://mcp.example.com/*")
    assert "jsonschema" in loaded
    assert "mcp" not in loaded and "pydantic" not in loaded


def test_sealing_loads_cryptography_when_first_used(tmp_path: Path) -> None:
    """The sealer built at start-up derives its keys (and imports ``cryptography``) on the first
    blob; sealing and opening then work as before (tests/test_sealing.py holds the format)."""
    assert "cryptography" in _loaded_at_start(tmp_path, use=_SEAL)


def test_a_diskcache_store_loads_sqlite_with_the_app(tmp_path: Path) -> None:
    """The default store (diskcache) still opens at start-up, with SQLite."""
    use = f"""
from shim.store.diskcache_backend import DiskCacheBackend
assert DiskCacheBackend({str(tmp_path / "store")!r})._failures
"""
    assert {"sqlite3", "diskcache"} <= _loaded_at_start(tmp_path, use=use)

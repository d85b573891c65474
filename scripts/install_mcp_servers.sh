#!/usr/bin/env bash
# The MCP server of the other SDK line for the hosted-tool tests (tests/hosted/): the project's
# venv has mcp 1.x (Codex's stdio servers need FastMCP); servers built on mcp 2.x (MCPServer)
# run from their own venv here. Idempotent; called by scripts/test.sh.
set -euo pipefail
VENV="${SHIM_MCP2_VENV:-$HOME/.cache/shim/mcp2}"
if "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(0 if m.version("mcp").startswith("2.") else 1)' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q 'mcp>=2,<3'

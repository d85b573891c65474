#!/usr/bin/env bash
# Create .venv (once) and install the project with the extras named in $1 (default: none).
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
# A stamp keyed on pyproject.toml skips pip entirely when nothing changed.
stamp=".venv/.shim-installed-$(sha256sum pyproject.toml | cut -c1-16)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing $spec" >&2
  .venv/bin/python -m pip install -q -e "$spec" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -c "import shim" && touch "$stamp"
fi

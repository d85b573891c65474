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
  # grep only hides pip's "Location ... is ignored" noise; pip's own exit status decides.
  set +o pipefail
  .venv/bin/python -m pip install -q -e "$spec" 2>&1 | { grep -v "^WARNING: Location" >&2 || true; }
  rc=${PIPESTATUS[0]}
  set -o pipefail
  if [ "$rc" -ne 0 ]; then
    echo "bootstrap: pip install -e $spec failed (exit $rc)" >&2
    exit "$rc"
  fi
  .venv/bin/python -c "import shim" && touch "$stamp"
fi

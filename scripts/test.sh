#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs everything it needs, then lints, type-checks
# and runs pytest. In CI (CI=true) a missing real component fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check shim tests scripts bench && ruff format --check shim tests scripts bench
echo "== mypy" && mypy
echo "== pytest" && exec python -m pytest "$@"

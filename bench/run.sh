#!/usr/bin/env bash
# One command for the whole benchmark (issues 7, 18):  bash bench/run.sh [--quick] [--litellm] [--profile] ...
# Installs what it needs (the venv with the `bench` extra, wrk from apt) and runs bench/harness.py,
# which also checks out the baseline commit (default deb5485, `--baseline REV`) into a temporary
# folder with `git archive` and measures it back to back with this checkout (issue 18's ratios).
# Scenario h (bench/hosted_tool.py, ~45 s): shim CPU per response with one hosted MCP call, against a
# real MCP server (tests/support/mcp_server.py); `--scenarios h` runs it alone.
# BENCH_PYTHON=/path/to/python: use that interpreter (it must have the `bench` extra) instead of .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${BENCH_PYTHON:-}" ]; then
  py="$BENCH_PYTHON"
else
  scripts/bootstrap.sh bench
  py=.venv/bin/python
fi
if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk (apt)" >&2
  sudo_=""
  [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  $sudo_ apt-get install -y -q wrk >/dev/null 2>&1 || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q wrk >/dev/null; }
fi
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is required" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec "$py" -m bench.harness "$@"

#!/usr/bin/env bash
# Run the official Open Responses compliance suite against a running server.
#
#   scripts/compliance.sh SUITE_DIR BASE_URL MODEL [extra suite flags...]
#
#   SUITE_DIR  a checkout of the openresponses repository (holds bin/compliance-test.ts); it is
#              never copied into this repo
#   BASE_URL   e.g. http://127.0.0.1:8080/v1   (the suite appends /responses, /responses/compact)
#   MODEL      the model name to send
#   extra      passed through, e.g. --filter basic-response,streaming-response  or  -v
#
# The suite needs only zod 3 and a TypeScript runner: this script installs zod@3 and tsx into
# ${SHIM_CACHE_DIR:-~/.cache/shim}/compliance-node (outside the repo) when missing and runs it with
# node (>= 20; on node 20 the global WebSocket needs --experimental-websocket).
# The API key sent is $OPENRESPONSES_API_KEY, or "shim-test".
#
# Output: the suite's --json report on stdout; a one-line-per-test summary on stderr.
# Exit status: the suite's (0 when nothing failed, 1 otherwise), or 2 on a usage/setup error.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  sed -n '2,18p' "$0" >&2
  exit 2
fi

if [[ ! -d "$1" ]]; then
  echo "compliance.sh: suite dir $1 does not exist" >&2
  exit 2
fi
suite_dir=$(cd "$1" && pwd)
base_url=$2
model=$3
shift 3

if [[ ! -f "$suite_dir/bin/compliance-test.ts" ]]; then
  echo "compliance.sh: $suite_dir/bin/compliance-test.ts not found" >&2
  exit 2
fi
command -v node >/dev/null || { echo "compliance.sh: node is not installed" >&2; exit 2; }
command -v npm >/dev/null || { echo "compliance.sh: npm is not installed" >&2; exit 2; }

cache_root=${SHIM_CACHE_DIR:-$HOME/.cache/shim}
deps_dir=$cache_root/compliance-node
modules=$deps_dir/node_modules
tsx_cli=$modules/tsx/dist/cli.mjs

if [[ ! -f "$modules/zod/package.json" || ! -f "$tsx_cli" ]]; then
  echo "compliance.sh: installing zod@3 and tsx into $deps_dir" >&2
  mkdir -p "$deps_dir"
  [[ -f "$deps_dir/package.json" ]] || echo '{"name":"shim-compliance-deps","private":true}' >"$deps_dir/package.json"
  (cd "$deps_dir" && npm install --no-audit --no-fund --loglevel=error "zod@^3.25.76" "tsx@^4") >&2
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
node_opts=${NODE_OPTIONS:-}
if ((node_major < 22)); then
  node_opts="--experimental-websocket${node_opts:+ $node_opts}"
fi

report=$(mktemp)
trap 'rm -f "$report"' EXIT

set +e
(
  cd "$suite_dir" &&
    NODE_PATH="$modules${NODE_PATH:+:$NODE_PATH}" NODE_OPTIONS="$node_opts" NODE_NO_WARNINGS=1 \
      node "$tsx_cli" bin/compliance-test.ts \
      --base-url "$base_url" \
      --api-key "${OPENRESPONSES_API_KEY:-shim-test}" \
      --model "$model" \
      --json "$@"
) >"$report"
status=$?
set -e

cat "$report"

# Human summary on stderr (the JSON above is the machine-readable result).
node -e '
const fs = require("fs");
let data;
try { data = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { process.exit(0); }
for (const r of data.results ?? []) {
  const errs = (r.errors ?? []).join(" | ");
  console.error(`${r.status.padEnd(7)} ${r.id}${errs ? "  -- " + errs.slice(0, 400) : ""}`);
}
const s = data.summary ?? {};
console.error(`compliance: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
' "$report" || true

exit "$status"

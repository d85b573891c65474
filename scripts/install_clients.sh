#!/usr/bin/env bash
# Install the Node clients the client tests drive (tests/clients): the Codex CLI (@openai/codex,
# its binary ships inside the npm package) and the Vercel AI SDK (ai@6, @ai-sdk/openai@3), at the
# versions pinned in tests/clients/node/package-lock.json, into tests/clients/node/node_modules
# (gitignored). `npm ci` runs only when the lock file changed since the last install (a stamp in
# node_modules), so a second run takes well under a second.
# Without node/npm it tries apt-get (root only); failing that it warns and the tests skip, except
# under CI=true, where it fails.
set -euo pipefail
cd "$(dirname "$0")/../tests/clients/node"

fail() {
  if [ "${CI:-}" = "true" ]; then
    echo "install_clients: $1 (CI=true: failing)" >&2
    exit 1
  fi
  echo "install_clients: WARNING: $1; the Node client tests will skip" >&2
  exit 0
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "install_clients: installing nodejs and npm with apt-get" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null || true
  fi
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || fail "node and npm are missing"
fi

stamp="node_modules/.shim-installed-$(cat package.json package-lock.json | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
echo "install_clients: npm ci in tests/clients/node ($(node --version))" >&2
if ! npm ci --no-audit --no-fund --loglevel=error >&2; then
  fail "npm ci failed"
fi
touch "$stamp"

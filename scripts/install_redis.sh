#!/usr/bin/env bash
# Make sure `redis-server` is on PATH for the store tests (tests/store): apt-get when missing.
# Without root or apt it only warns; the Redis tests then skip locally and fail under CI=true.
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "install_redis: installing redis-server with apt-get" >&2
  if apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null &&
    command -v redis-server >/dev/null 2>&1; then
    exit 0
  fi
fi
if [ "${CI:-}" = "true" ]; then
  echo "install_redis: redis-server is missing and could not be installed (CI=true: failing)" >&2
  exit 1
fi
echo "install_redis: WARNING: no redis-server (needs root + apt-get); the Redis store tests will skip" >&2

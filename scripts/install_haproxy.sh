#!/usr/bin/env bash
# Make sure `haproxy` is on PATH for the load-balanced replicas test
# (tests/ops/test_load_balanced_replicas.py): the Debian package via apt-get when missing.
# Without root or apt it only warns; that test then skips locally and fails under CI=true.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin" # Debian puts haproxy in /usr/sbin
command -v haproxy >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "install_haproxy: installing haproxy with apt-get" >&2
  if apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null &&
    command -v haproxy >/dev/null 2>&1; then
    exit 0
  fi
fi
if [ "${CI:-}" = "true" ]; then
  echo "install_haproxy: haproxy is missing and could not be installed (CI=true: failing)" >&2
  exit 1
fi
echo "install_haproxy: WARNING: no haproxy (needs root + apt-get); the load-balancer test will skip" >&2

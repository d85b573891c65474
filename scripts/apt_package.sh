#!/usr/bin/env bash
# Make sure a Debian package's binary is on PATH for the tests that need a real component:
#   bash scripts/apt_package.sh BINARY[,OTHER_NAME] PACKAGE "what needs it"
# Installs PACKAGE with apt-get when none of the names is found. The package lists are refreshed
# only when the first try fails, so the install scripts run by scripts/test.sh share one
# `apt-get update`. Without root or apt it only warns: the tests skip locally and fail under CI=true.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin" # Debian puts some servers (haproxy) in /usr/sbin
binaries=$1 package=$2 what=$3
found() {
  local name
  for name in ${binaries//,/ }; do
    command -v "$name" >/dev/null 2>&1 && return 0
  done
  return 1
}
install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1
}
found && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "install: $package with apt-get" >&2
  if { install || { apt-get update -qq >/dev/null && install; }; } && found; then
    exit 0
  fi
fi
if [ "${CI:-}" = "true" ]; then
  echo "install: $package is missing and could not be installed (CI=true: failing)" >&2
  exit 1
fi
echo "install: WARNING: no $package (needs root + apt-get); $what will skip" >&2

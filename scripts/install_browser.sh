#!/usr/bin/env bash
# Make sure a Chromium is on PATH for the inspector's browser test
# (tests/recording/test_inspector_browser.py): Debian's `chromium` package, driven by Playwright
# (PyPI) through `executable_path`. Playwright's own
# browser download is never used: it fetches from a CDN, which a CI box without internet cannot.
# Without root or apt it only warns; the browser test then skips locally and fails under CI=true.
set -euo pipefail
for name in chromium chromium-browser; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: installing chromium with apt-get" >&2
  if apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null &&
    command -v chromium >/dev/null 2>&1; then
    exit 0
  fi
fi
if [ "${CI:-}" = "true" ]; then
  echo "install_browser: chromium is missing and could not be installed (CI=true: failing)" >&2
  exit 1
fi
echo "install_browser: WARNING: no chromium (needs root + apt-get); the inspector browser test will skip" >&2

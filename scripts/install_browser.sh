#!/usr/bin/env bash
# Debian's Chromium for the inspector's browser test (tests/recording/test_inspector_browser.py),
# driven by Playwright (PyPI) through `executable_path`. Playwright's own browser download is never
# used: it fetches from a CDN, which a CI box without internet cannot reach.
exec bash "$(dirname "$0")/apt_package.sh" chromium,chromium-browser chromium "the inspector browser test"

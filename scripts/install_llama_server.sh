#!/usr/bin/env bash
# Build llama.cpp's own llama-server from the pinned llama-cpp-python sdist on PyPI and cache it
# (tests/support/llama_server.py; the first build takes a few minutes on 2 cores, later runs
# nothing), installing what the build needs when missing: cmake (apt, else PyPI `cmake` into the
# running venv) and a C/C++ compiler with make (apt). Also assembles the Gemma 3 270M GGUF.
# Usage: bash scripts/install_llama_server.sh   (with the project venv's python first on PATH)
# Without what it needs it warns and exits 0 (tests/e2e's llama-server tests then skip), except
# under CI=true, where it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  if [ "${CI:-}" = "true" ]; then
    echo "install_llama_server: $1 (CI=true: failing)" >&2
    exit 1
  fi
  echo "install_llama_server: WARNING: $1; the llama-server tests will skip" >&2
  exit 0
}

apt_install() {
  [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || return 1
  echo "install_llama_server: installing $* with apt-get" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ -x "$(python scripts/llama_server.py path)" ] && [ -f "$(python -m shim.cli.embedded path)" ]; then
  exit 0
fi
if ! command -v c++ >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
  apt_install g++ gcc make || fail "no C/C++ compiler or make, and apt-get could not install them"
fi
if ! command -v cmake >/dev/null 2>&1; then
  apt_install cmake || python -m pip install -q 'cmake>=3.21' || fail "no cmake, and neither apt-get nor pip installed it"
fi
python scripts/llama_server.py ensure >/dev/null || fail "building llama-server failed"

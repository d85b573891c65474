"""llama.cpp's own ``llama-server``, built from the llama-cpp-python sdist on PyPI, as a real upstream.

The llama-cpp-python source distribution vendors llama.cpp's whole tree, ``tools/server``
included, so the C++ server most people run comes from PyPI by package name like everything else
here. ``ensure_binary()`` downloads the pinned sdist with pip, builds only the ``llama-server``
target with cmake (Release, static, so the binary needs no build tree) and caches it at
``${SHIM_CACHE_DIR:-~/.cache/shim}/llama-server/<version>/llama-server``: a few minutes on 2 cores
the first time (cmake's progress goes to stderr, with a line every 30 s), nothing afterwards. The
binary is written under a temporary name and renamed, under a file lock, so concurrent or
interrupted builds leave nothing half-written. The build targets this machine's CPU
(``GGML_NATIVE``), which is why the cache is per machine.

The model is the embedded upstream's Gemma 3 270M GGUF (``shim.cli.embedded.ensure_model``). It has
no chat template, so the server gets ``--chat-template chatml --jinja`` (Jinja also turns on
tool calling and ``reasoning_content`` parsing).

    server = LlamaServer(log_path=Path("server.log"))
    base_url = server.start()          # "http://127.0.0.1:PORT/v1" once /health answers 200
    ...
    server.stop()

``scripts/llama_server.py`` is the command line (``ensure``, ``serve``, ``path``);
``scripts/install_llama_server.sh`` (called by ``scripts/test.sh``) also installs cmake and a C++
compiler when they are missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from shim.cli.embedded import MODEL_ALIAS, cache_dir, free_port, model_path

__all__ = [
    "CHAT_TEMPLATE",
    "DIALECT",
    "LLAMA_CPP_PYTHON_VERSION",
    "LlamaServer",
    "LlamaServerError",
    "binary_path",
    "ensure_binary",
    "is_available",
    "server_argv",
]

# The llama-cpp-python release whose vendored llama.cpp is built: the one the embedded upstream
# installs (llama.cpp b1-0c1e570). Bump both together.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_REQUIREMENT = f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"
DIALECT = "llamacpp-server"
CHAT_TEMPLATE = "chatml"
DEFAULT_N_CTX = 8192
# Two slots of 4096 tokens each: a client's second request need not wait for the first.
DEFAULT_PARALLEL = 2
# Half the cores, as for the embedded upstream (llama.cpp's threads spin-wait).
DEFAULT_N_THREADS = max(1, (os.cpu_count() or 2) // 2)
CMAKE_CONFIGURE = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)


class LlamaServerError(RuntimeError):
    """Building or starting llama-server failed."""


def log(message: str) -> None:
    print(f"[llama-server] {message}", file=sys.stderr, flush=True)


# --- the binary ----------------------------------------------------------------------------------


def binary_path() -> Path:
    return cache_dir() / "llama-server" / LLAMA_CPP_PYTHON_VERSION / "llama-server"


def is_available() -> tuple[bool, str]:
    """Whether the server can start without building anything, and if not, why."""
    if not binary_path().is_file():
        return (
            False,
            f"llama-server not built at {binary_path()} (run: python scripts/llama_server.py ensure)",
        )
    if not model_path().is_file():
        return False, f"model not assembled at {model_path()} (run: python -m shim.cli.embedded ensure)"
    return True, ""


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".llama-server.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], what: str, cwd: Path | None = None) -> None:
    """Run ``cmd``, passing on the lines that show progress (cmake's ``[ NN%]``) and a heartbeat
    every 30 s; on failure, raise with the output's tail."""
    log(f"{what}: {' '.join(cmd)}")
    started = time.monotonic()
    last = [started]
    lines: list[str] = []
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(30):
            if time.monotonic() - last[0] >= 30:
                log(f"... still {what} ({int(time.monotonic() - started)}s elapsed)")

    thread = threading.Thread(target=beat, name="llama-server-heartbeat", daemon=True)
    thread.start()
    try:
        for line in proc.stdout:
            lines = [*lines[-40:], line.rstrip()]
            if line.startswith("[") and "%]" in line[:8]:
                log(line.rstrip())
                last[0] = time.monotonic()
        code = proc.wait()
    finally:
        stop.set()
        thread.join()
    if code != 0:
        tail = "\n".join(lines)
        raise LlamaServerError(f"{what} failed (exit {code}); output ends:\n{tail}")
    log(f"{what}: done in {int(time.monotonic() - started)}s")


def _cmake() -> str:
    found = shutil.which("cmake")
    if found is None:
        raise LlamaServerError("cmake not found (scripts/install_llama_server.sh installs it)")
    return found


def build(workdir: Path) -> Path:
    """Download the sdist into ``workdir``, build ``llama-server`` there; return the binary."""
    cmake = _cmake()
    pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps"]
    pip += ["--no-binary", ":all:", "-d", str(workdir), SDIST_REQUIREMENT]
    _run(pip, f"downloading the {SDIST_REQUIREMENT} sdist")
    (archive,) = workdir.glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    (source,) = (p for p in workdir.iterdir() if p.is_dir())
    tree = source / "vendor" / "llama.cpp"
    if not (tree / "tools" / "server").is_dir():
        raise LlamaServerError(f"{archive.name} vendors no llama.cpp tools/server")
    out = workdir / "build"
    _run([cmake, "-S", str(tree), "-B", str(out), *CMAKE_CONFIGURE], "configuring llama.cpp")
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
    _run(
        [cmake, "--build", str(out), "--target", "llama-server", "-j", jobs],
        "building llama-server (a few minutes on 2 cores)",
    )
    binary = out / "bin" / "llama-server"
    if not binary.is_file():
        raise LlamaServerError(f"the build left no {binary}")
    return binary


def ensure_binary() -> Path:
    """Build and cache llama-server unless the cached binary exists; return its path."""
    target = binary_path()
    if target.is_file():
        log(f"present: {target}")
        return target
    with _lock():
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        log(f"building llama-server from the {SDIST_REQUIREMENT} sdist into {target}")
        with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as tmp:
            built = build(Path(tmp))
            staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            shutil.copy2(built, staged)
            os.replace(staged, target)
    return target


# --- the server ----------------------------------------------------------------------------------


def server_argv(
    binary: Path,
    model: Path,
    *,
    port: int,
    host: str = "127.0.0.1",
    n_ctx: int = DEFAULT_N_CTX,
    parallel: int = DEFAULT_PARALLEL,
    n_threads: int = DEFAULT_N_THREADS,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``llama-server`` command line serving ``model`` as ``MODEL_ALIAS``."""
    return [
        str(binary),
        "--model",
        str(model),
        "--alias",
        MODEL_ALIAS,
        "--host",
        host,
        "--port",
        str(port),
        "--ctx-size",
        str(n_ctx),
        "--parallel",
        str(parallel),
        "--threads",
        str(n_threads),
        # Gemma 3 270M's GGUF carries no chat template. --jinja renders it with the Jinja engine,
        # which is what gives llama-server its tool calling and reasoning parsing.
        "--jinja",
        "--chat-template",
        CHAT_TEMPLATE,
        "--no-webui",
        *extra,
    ]


class LlamaServer:
    """``llama-server`` on a free loopback port, owned by this process; ``stop()`` ends it."""

    def __init__(
        self,
        *,
        log_path: Path,
        n_ctx: int = DEFAULT_N_CTX,
        parallel: int = DEFAULT_PARALLEL,
        n_threads: int = DEFAULT_N_THREADS,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 120.0,
    ) -> None:
        self.log_path = log_path
        self.n_ctx = n_ctx
        self.parallel = parallel
        self.n_threads = n_threads
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        if self._proc is None or self.port is None:
            raise LlamaServerError("llama-server is not running")
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server (nothing is built or installed here); return its ``.../v1`` URL."""
        ok, why = is_available()
        if not ok:
            raise LlamaServerError(why)
        self.port = free_port()
        argv = server_argv(
            binary_path(),
            model_path(),
            port=self.port,
            n_ctx=self.n_ctx,
            parallel=self.parallel,
            n_threads=self.n_threads,
            extra=self.extra_args,
        )
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        # /health answers 503 while the model loads, 200 once requests are served.
        health = f"http://127.0.0.1:{self.port}/health"
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise LlamaServerError(f"llama-server exited with {code}; its log ends:\n{self._tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(health, timeout=1).status_code == 200:
                    return self.base_url
            if time.monotonic() > deadline:
                self.stop()
                raise LlamaServerError(f"llama-server did not answer {health} in time:\n{self._tail()}")
            time.sleep(0.2)

    def _tail(self, limit: int = 4000) -> str:
        data = self.log_path.read_bytes() if self.log_path.exists() else b""
        return data[-limit:].decode("utf-8", "replace")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

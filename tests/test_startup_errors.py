"""``shim serve`` start-up errors: checked before the banner and before the embedded upstream
starts; one line saying what is wrong and what is allowed, no traceback, exit status 2.
Warnings (a route key variable that is unset, a URL without ``/v1``) do not stop the start.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, serve_shim, shim_env

UP = ["--upstream", "http://127.0.0.1:9/v1", "--dialect", "openai"]

# name -> (arguments, extra environment, words the one line must hold)
CASES: dict[str, tuple[list[str], dict[str, str], list[str]]] = {
    "dialect typo": (
        ["--upstream", "http://127.0.0.1:9/v1", "--dialect", "vlm"],
        {},
        ["'vlm'", "vllm", "auto"],
    ),
    "dialect typo from the environment": (UP[:2], {"SHIM_DIALECT": "lamacpp"}, ["'lamacpp'", "llamacpp"]),
    "store scheme": (UP, {"SHIM_STORE": "bogus://x"}, ["SHIM_STORE", "'bogus://x'", "none", "redis://"]),
    "store without a directory": ([*UP, "--store", "diskcache://"], {}, ["diskcache:///absolute/path"]),
    "upstream without a scheme": (["--upstream", "127.0.0.1:52285/v1"], {}, ["http://127.0.0.1:52285/v1"]),
    "upstream with another scheme": (["--upstream", "ftp://h/v1"], {}, ["http://", "https://"]),
    "negative retries": (UP, {"SHIM_RETRIES": "-1"}, ["SHIM_RETRIES", ">= 0"]),
    "retries not a number": (UP, {"SHIM_RETRIES": "many"}, ["SHIM_RETRIES", "int"]),
    "zero idle timeout": (UP, {"SHIM_TIMEOUT_IDLE": "0"}, ["SHIM_TIMEOUT_IDLE", "> 0"]),
    "negative store ttl": (UP, {"SHIM_STORE_TTL": "-5"}, ["SHIM_STORE_TTL", ">= 0"]),
    "zero body size": (UP, {"SHIM_MAX_BODY_BYTES": "0"}, ["SHIM_MAX_BODY_BYTES", ">= 1"]),
    "negative limit": (UP, {"SHIM_LIMIT_MAX_TOOLS": "-1"}, ["SHIM_LIMIT_MAX_TOOLS", ">= 0"]),
    "diagnostics word": (UP, {"SHIM_DIAGNOSTICS": "loud"}, ["SHIM_DIAGNOSTICS", "error, ignore, warn"]),
    "port out of range": ([*UP, "--port", "70000"], {}, ["--port", "65535"]),
    "port from the environment": (UP, {"SHIM_PORT": "http"}, ["SHIM_PORT", "int"]),
    "zero workers": ([*UP, "--workers", "0"], {}, ["--workers", "1 or more"]),
    "workers not a number": (UP, {"SHIM_WORKERS": "two"}, ["SHIM_WORKERS", "1 or more"]),
    "upstream kind": (UP, {"SHIM_UPSTREAM_KIND": "grpc"}, ["SHIM_UPSTREAM_KIND", "chat, responses"]),
    "embedded format": ([], {"SHIM_EMBEDDED_FORMAT": "fancy"}, ["SHIM_EMBEDDED_FORMAT", "functions, plain"]),
    "no upstream and no embedded": ([], {"SHIM_NO_EMBEDDED": "1"}, ["SHIM_UPSTREAM_URL", "SHIM_NO_EMBEDDED"]),
}


def _run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {"SHIM_DATA_DIR": str(tmp_path / "data"), "SHIM_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "shim", "serve", *args],
        env=shim_env(**{**base, **env}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_one_line(result: subprocess.CompletedProcess[str], words: list[str]) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shim: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result.stdout == ""


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_setting_stops_the_start_in_one_line(
    tmp_path: Path, case: tuple[list[str], dict[str, str], list[str]]
) -> None:
    args, env, words = case
    _assert_one_line(_run(args, env, tmp_path), words)


def test_a_bad_config_file_value(tmp_path: Path) -> None:
    config = tmp_path / "shim.toml"
    config.write_text('[[routes]]\nupstream = "http://127.0.0.1:9/v1"\nmax_output_tokens = 0\n')
    _assert_one_line(
        _run(["--config", str(config)], {}, tmp_path), ["shim.toml", "max_output_tokens", ">= 1"]
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("args", [UP, []], ids=["with an upstream", "embedded: before llama starts"])
def test_a_busy_port_stops_the_start_before_anything_runs(
    tmp_path: Path, busy_port: int, args: list[str]
) -> None:
    result = _run([*args, "--port", str(busy_port)], {}, tmp_path)
    _assert_one_line(result, [f"127.0.0.1:{busy_port}", "already in use", "--port"])
    assert not (tmp_path / "cache").exists(), "the embedded upstream must not have started"


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shim", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    assert result.stdout.startswith("shim 0.")


def test_help_lists_the_dialects_and_store_none() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shim", "serve", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    text = " ".join(result.stdout.split())
    for word in (
        "llamacpp-python-functions",
        "vllm",
        "default auto",
        "memory://, or none",
        "functions,plain",
    ):
        assert word in text.replace("- ", "-"), word


WARNINGS = {
    "route key variable unset": (
        '[[routes]]\nupstream = "http://127.0.0.1:9/v1"\ndialect = "openai"\napi_key_env = "SHIM_TEST_UNSET_KEY"\n',
        "SHIM_TEST_UNSET_KEY is not set",
    ),
    "URL without /v1": (
        '[[routes]]\nupstream = "http://127.0.0.1:9"\ndialect = "openai"\n',
        "did you mean http://127.0.0.1:9/v1?",
    ),
}


@pytest.mark.parametrize("case", WARNINGS.values(), ids=WARNINGS.keys())
def test_warnings_do_not_stop_the_start(tmp_path: Path, case: tuple[str, str]) -> None:
    config, words = case
    (tmp_path / "shim.toml").write_text(config)
    shim = serve_shim(tmp_path, "--config", str(tmp_path / "shim.toml"), "--store", "memory://")
    shim.stop()
    warnings = [line for line in shim.log_tail().splitlines() if line.startswith("shim: warning: ")]
    assert any(words in line for line in warnings), shim.log_tail()


def test_workers_start_without_a_metrics_warning(tmp_path: Path) -> None:
    """/metrics counts every worker (tests/ops/test_worker_metrics.py): nothing to warn about."""
    shim = serve_shim(tmp_path, *UP, "--workers", "2", "--store", "memory://", timeout=60)
    shim.stop()
    assert "serving Open Responses" in shim.log_tail(), shim.log_tail()
    warnings = [line for line in shim.log_tail().splitlines() if line.startswith("shim: warning: ")]
    assert not any("/metrics" in line for line in warnings), warnings

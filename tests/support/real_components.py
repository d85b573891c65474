"""Real components the suite runs against (the llama upstream, redis-server, node clients).

A missing one skips locally with the reason printed, and FAILS when ``CI=true``: CI installs every
component (``scripts/test.sh``), so a missing one there is a broken setup, not a reason to skip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from shim.cli.embedded import MODEL_ALIAS, EmbeddedUpstream, EmbeddedUpstreamError, is_available

IN_CI = os.environ.get("CI") == "true"
LLAMA_HINT = "`bash scripts/test.sh` or `python -m shim.cli.embedded ensure` installs it"
CLIENTS_HINT = "`bash scripts/install_clients.sh` (called by scripts/test.sh) installs the npm clients"


def unavailable(what: str, reason: str, hint: str) -> NoReturn:
    """Skip (or, under ``CI=true``, fail) because ``what`` is missing; ``hint`` says what installs it."""
    message = f"{what} unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing real component fails; {hint})")
    print(f"\nSKIP {what}: {reason}", file=sys.stderr)
    pytest.skip(f"{message}; {hint}", allow_module_level=True)


@contextmanager
def running_llama(log: Path, **options: Any) -> Iterator[str]:
    """The base URL (``.../v1``) of the embedded llama-cpp-python upstream, warmed up; stopped after.
    ``options`` go to ``EmbeddedUpstream`` (``n_ctx``, ...)."""
    ok, why = is_available()
    if not ok:
        unavailable("real llama upstream", why, LLAMA_HINT)
    upstream = EmbeddedUpstream(install=False, log_path=log, **options)
    try:
        url = upstream.start()
    except EmbeddedUpstreamError as exc:
        unavailable("real llama upstream", str(exc), LLAMA_HINT)
    try:
        # The first generation pages the model in and warms llama.cpp up (seconds): do it here,
        # not in whichever test happens to run first.
        warm = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        httpx.post(f"{url}/chat/completions", json=warm, timeout=120).raise_for_status()
        yield url
    finally:
        upstream.stop()


BROWSER_HINT = "`bash scripts/install_browser.sh` (called by scripts/test.sh) installs Debian's chromium"


def chromium_executable() -> str:
    """Debian's Chromium for Playwright's ``executable_path`` (never Playwright's own download)."""
    import shutil

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        unavailable("browser", f"the playwright package is missing ({exc})", "pip install -e '.[test]'")
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("browser", "no chromium on PATH", BROWSER_HINT)

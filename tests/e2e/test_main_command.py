"""The main command as the README gives it — ``shim serve`` with no flags but a port, so the
embedded model with its default profile — and the README's own examples against it (issue 17:
they ended ``incomplete`` with garbage).

``scripts/serve.sh --port P`` is ``bootstrap.sh`` (install into .venv) then exactly
``python -m shim serve --port P``; the test runs the latter with this interpreter. The request
bodies and the SDK code are read out of README.md, so the test breaks when the README changes
and no longer works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.cli.embedded import is_available
from tests.support.processes import Served, serve_shim
from tests.support.real_components import LLAMA_HINT, unavailable

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_URL = "http://127.0.0.1:8080/v1"


def _readme() -> str:
    return README.read_text()


def _curl_bodies() -> list[str]:
    """The ``-d '…'`` bodies of the README's curl examples against /v1/responses."""
    return re.findall(r"curl -sN? http://127\.0\.0\.1:8080/v1/responses[^\n]*\\\n\s*-d '([^']+)'", _readme())


def _sdk_example() -> str:
    match = re.search(r"```python\n(from openai import OpenAI\n.*?)```", _readme(), re.S)
    assert match, "README.md has no openai SDK example"
    return match.group(1)


@pytest.fixture(scope="module")
def main_command(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    ok, why = is_available()
    if not ok:
        unavailable("real llama upstream", why, LLAMA_HINT)
    shim = serve_shim(tmp_path_factory.mktemp("main-command"), timeout=180)
    yield shim
    shim.stop()


def test_readme_lists_the_examples() -> None:
    assert len(_curl_bodies()) == 2


@pytest.mark.parametrize("index", [0, 1], ids=["curl", "curl streamed"])
def test_readme_curl_ends_completed(main_command: Served, index: int) -> None:
    body = _curl_bodies()[index]
    url = f"{main_command.base_url}/responses"
    headers = {"content-type": "application/json"}
    if '"stream": true' not in body:
        answer = httpx.post(url, content=body, headers=headers, timeout=600).json()
    else:
        with httpx.stream("POST", url, content=body, headers=headers, timeout=600) as stream:
            lines = [line for line in stream.iter_lines() if line.startswith("data: {")]
        assert '"type":"response.completed"' in lines[-1], lines[-1]
        answer = httpx.Response(200, content=lines[-1].removeprefix("data: ")).json()["response"]
    assert (answer["status"], answer["incomplete_details"]) == ("completed", None), answer


def test_readme_sdk_example_ends_completed(main_command: Served) -> None:
    code = _sdk_example().replace(README_URL, main_command.base_url)
    assert main_command.base_url in code
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)  # the README's own example
    for name in ("first", "second"):
        assert scope[name].status == "completed", (name, scope[name])
    assert scope["second"].previous_response_id == scope["first"].id


# The official compliance suite is a checkout of github.com/openresponses/openresponses, which
# nothing in this repository may download or copy: the test is deselected by default (marker
# ``compliance``) and run by `SHIM_COMPLIANCE_SUITE=DIR pytest -m compliance`; asked for without
# a checkout, it fails and says why.
SUITE_ENV = "SHIM_COMPLIANCE_SUITE"
# What the embedded model lost before (issue 17): compaction (an empty summary was a 502) and
# tool calling (the format showed the model no tools without a system message).
ONCE_FAILING = {"compact-response", "websocket-compact-new-chain", "tool-calling"}


@pytest.mark.compliance
def test_compliance_over_the_main_command(main_command: Served) -> None:
    """Measured: 17 of 17 at load averages 2-3, 5 and 6.5 (28-30 s); 12 of 17 at 6 when five
    WebSocket turns hit the suite's 30 s."""
    suite = os.environ.get(SUITE_ENV, "")
    if not suite or not (Path(suite) / "bin" / "compliance-test.ts").is_file() or not shutil.which("node"):
        pytest.fail(f"{SUITE_ENV} names no checkout of the compliance suite (or node is missing)")
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "compliance.sh"), suite, main_command.base_url, "gemma3-270m"],
        capture_output=True,
        timeout=900,
        check=False,
    )
    results = json.loads(run.stdout)["results"]
    passed = {r["id"] for r in results if r["status"] == "passed"}
    failed = {r["id"]: " | ".join(r.get("errors", [])) for r in results if r["status"] != "passed"}
    # The suite waits a fixed 30 s for a WebSocket turn while all 17 tests queue at the one llama
    # (~25 s of work at a load average of 6 on 2 cores): such a timeout is the machine's load.
    timed_out = {
        name for name, errors in failed.items() if "Timed out waiting for terminal WebSocket" in errors
    }
    summary = run.stderr.decode()
    assert set(failed) == timed_out, summary  # nothing else may fail
    assert passed >= ONCE_FAILING - timed_out, summary
    assert len(passed) >= 15 or timed_out, summary

"""Record Open Responses upstream bytes for ``fixtures/chat_over_responses/shim-llamacpp/*``.

The Open Responses provider recorded is the shim itself over the embedded llama.cpp upstream
(``python -m shim serve --dialect llamacpp-python``), the same stack the e2e tests use. For each
case folder holding ``request.json`` (a Chat request) and no ``upstream.*`` yet (or every one,
with ``--force``), the Chat request is translated exactly as the server does
(``to_responses_request``), POSTed to ``/v1/responses`` and the raw answer written to
``upstream.sse`` / ``upstream.json`` (a status >= 400 also writes ``case.toml``).

    .venv/bin/python scripts/record_chat_over_responses.py [--force]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shim.cli.embedded import DIALECT, EmbeddedUpstream, free_port
from shim.core.diagnostics import Diagnostics
from shim.translate.responses_request import encode_create_response_body, to_responses_request
from shim.wire.chat import decode_chat_request

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "chat_over_responses" / "shim-llamacpp"


def _serve(upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", "shim", "serve", "--upstream", upstream, "--dialect", DIALECT]
    argv += ["--port", str(port), "--store", "memory://"]
    proc = subprocess.Popen(argv, env={**os.environ, "SHIM_SECRET": "record"})
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, f"{base}/v1"
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("shim serve did not start")


def record(base: str, case: Path) -> None:
    req = decode_chat_request((case / "request.json").read_bytes())
    body = to_responses_request(req, model=req.model, diags=Diagnostics("ignore"), stream=bool(req.stream))
    data = encode_create_response_body(body)
    headers = {"content-type": "application/json"}
    # Twice: llama-cpp-python is deterministic at temperature 0 once the prompt is cached.
    for _ in range(2):
        with httpx.stream(
            "POST", f"{base}/responses", content=data, headers=headers, timeout=300
        ) as response:
            raw = response.read()
    name = (
        "upstream.sse"
        if response.headers.get("content-type", "").startswith("text/event-stream")
        else "upstream.json"
    )
    (case / name).write_bytes(raw)
    if response.status_code >= 400:
        (case / "case.toml").write_text(f"upstream_status = {response.status_code}\n")
    print(f"{case.name}: {response.status_code} {name} {len(raw)} bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="re-record cases that have bytes already")
    args = parser.parse_args()
    cases = [p for p in sorted(ROOT.iterdir()) if (p / "request.json").is_file()]
    todo = [p for p in cases if args.force or not any(p.glob("upstream.*"))]
    if not todo:
        print("nothing to record")
        return 0
    with EmbeddedUpstream() as llama:
        proc, base = _serve(llama.base_url)
        try:
            for case in todo:
                record(base, case)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())

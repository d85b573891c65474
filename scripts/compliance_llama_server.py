"""The official Open Responses compliance suite against llama-server, side by side (docs/upstreams.md).

Two runs over one llama-server (tests/support/llama_server.py: Gemma 3 270M, ``--chat-template
chatml --jinja``, and ``--n-predict 48``: the output cap the shim's route also sets, so a direct
request the suite sends without a limit ends as soon as one through the shim), same model, same
server flags:

- **direct**: the suite against llama-server's own ``/v1/responses``;
- **via the shim**: the suite against ``shim serve`` in front of llama-server's
  ``/v1/chat/completions``, with the route written below (dialect ``llamacpp-server``, and for a
  base model that rarely ends a turn: ``max_output_tokens``, ``temperature = 0`` and the chatml
  end marker as a stop sequence, since the model writes ``<|im_end|>`` as text).

SUITE_DIR is a checkout of the openresponses repository (``bin/compliance-test.ts``); it is never
copied into this repo. Each run's one-line-per-test summary goes to stderr (scripts/compliance.sh),
and the totals are printed at the end.

    .venv/bin/python scripts/compliance_llama_server.py SUITE_DIR [--json-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shim.cli.embedded import MODEL_ALIAS, free_port
from tests.support.llama_server import DIALECT, LlamaServer

ROOT = Path(__file__).resolve().parents[1]
# A base model rarely ends a turn by itself: both runs cap its answers at this many tokens.
MAX_OUTPUT_TOKENS = 48
ROUTE = f"""[[routes]]
match = "*"
upstream = "{{upstream}}"
dialect = "{DIALECT}"
max_output_tokens = {MAX_OUTPUT_TOKENS}
temperature = 0
stop = ["<|im_end|>"]
"""


def suite(suite_dir: Path, base_url: str, out: Path | None, name: str) -> dict[str, int]:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "compliance.sh"), str(suite_dir), base_url, MODEL_ALIAS],
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(f"== {name}\n{proc.stderr}")
    report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if out is not None:
        (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    summary: dict[str, int] = report.get("summary", {})
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suite_dir", type=Path)
    parser.add_argument("--json-dir", type=Path, help="also write each run's --json report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="compliance-llama-server-") as tmp:
        work = Path(tmp)
        cap = ("--n-predict", str(MAX_OUTPUT_TOKENS))
        # Four slots: the suite sends its tests at once, and two slots queue them past its timeouts.
        server = LlamaServer(log_path=work / "llama-server.log", parallel=4, extra_args=cap)
        with server:
            direct = suite(args.suite_dir, server.base_url, args.json_dir, "direct")
            config = work / "shim.toml"
            config.write_text(ROUTE.format(upstream=server.base_url))
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("SHIM_")}
            env |= {"SHIM_DATA_DIR": str(work / "data"), "SHIM_LOG_LEVEL": "warning"}
            argv = [sys.executable, "-m", "shim", "serve", "--config", str(config), "--store", "memory://"]
            argv += ["--host", "127.0.0.1", "--port", str(port)]
            with (work / "shim.log").open("ab") as log:
                shim = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            try:
                for _ in range(300):
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                via = suite(args.suite_dir, f"http://127.0.0.1:{port}/v1", args.json_dir, "via-shim")
            finally:
                shim.terminate()
                shim.wait(timeout=15)
    for name, summary in (("direct /v1/responses", direct), ("via the shim", via)):
        total = sum(summary.get(k, 0) for k in ("passed", "failed", "skipped"))
        print(f"{name}: {summary.get('passed', 0)}/{total} passed ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

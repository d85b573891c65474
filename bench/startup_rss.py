"""What a worker holds before its first request: RSS after the imports ``shim serve`` makes and
the app built as it builds it (memory:// store, a Chat upstream), in a fresh interpreter.

    .venv/bin/python -m bench.startup_rss [--root CHECKOUT] [--runs 2] [--modules]

Resident memory does not depend on the machine's load; runs differ by ~0.1 MiB. ``--modules``
also lists the top-level packages loaded (what ``tests/test_lazy_imports.py`` keeps out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import json, sys

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))

start = rss()
import shim.cli.command
from shim.http.app import create_app
from shim.settings import load_settings
imported = rss()
create_app(load_settings(upstream="http://127.0.0.1:9/v1", dialect="openai", kind="chat", store="memory://"))
print(json.dumps({"start": start, "imported": imported, "built": rss(),
                  "packages": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def measure(root: Path) -> dict[str, object]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SHIM_")}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as data:
        env.update(PYTHONPATH=str(root), SHIM_DATA_DIR=data)
        out = subprocess.run(
            [sys.executable, "-c", _PROBE], cwd=root, env=env, capture_output=True, text=True, check=True
        ).stdout
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the shim checkout to measure")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--modules", action="store_true", help="list the top-level packages loaded")
    args = parser.parse_args(argv)
    for _ in range(args.runs):
        result = measure(args.root.resolve())
        print(
            f"RSS MiB: interpreter {result['start']:.1f}, after imports {result['imported']:.1f}, "
            f"app built {result['built']:.1f}"
        )
    if args.modules:
        print(" ".join(str(name) for name in result["packages"]))  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())

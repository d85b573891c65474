"""Instructions per chunk of the translator benchmark, by valgrind's callgrind: the same count
whatever else the machine runs (CPU time on a shared VM moves by ±30% between runs).

    .venv/bin/python bench/translate_ir.py [--tokens 2000] [--root CHECKOUT]

Each direction of ``bench/translate.py`` runs under callgrind: one warm-up pass, then two passes
inside ``functools.reduce``, and callgrind counts only while a C function of that name runs
(``--toggle-collect``), so start-up and imports are left out. ``--root`` measures another
checkout (its ``bench/translate.py`` and ``shim``) for a before/after pair. Needs ``valgrind``;
never part of the test run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_PASSES = 2
_INNER = """
import functools, sys
sys.path[:0] = [{bench!r}, {root!r}]
import translate as t
fn, data = (t.forward, t.split(t.chat_stream({tokens}))) if {direction!r} == "forward" else (
    t.reverse, t.split(t.responses_stream({tokens})))
fn(data)
functools.reduce(lambda _, __: fn(data), range({passes}), None)
"""


def instructions(root: Path, direction: str, tokens: int) -> int:
    code = _INNER.format(
        bench=str(root / "bench"), root=str(root), tokens=tokens, direction=direction, passes=_PASSES
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": "0"}
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--toggle-collect=functools_reduce",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-c",
                code,
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in the callgrind output")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    for direction in ("forward", "reverse"):
        total = instructions(args.root, direction, args.tokens)
        print(f"{direction}: {total / (_PASSES * args.tokens):,.0f} instructions per chunk")


if __name__ == "__main__":
    main()

"""Record an upstream's answers to the dialect probe into ``fixtures/probe/NAME.json``.

    .venv/bin/python scripts/record_probe.py http://127.0.0.1:8000/v1 NAME

The file holds exactly what ``shim.upstream.probe.ask`` kept of each answer (status, ``server`` and
``content-type`` headers, body); ``tests/test_probe.py`` decides over it. Never edit a recording
by hand: a hand-made case is a separate ``NAME.synthetic.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shim.upstream.probe import ask


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, name = argv
    target = Path(__file__).resolve().parents[1] / "fixtures" / "probe" / f"{name}.json"
    target.write_bytes(msgspec.json.format(msgspec.json.encode(ask(base_url))) + b"\n")
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

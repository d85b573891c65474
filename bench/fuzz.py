"""Fuzz the app in-process: schemathesis cases from its own OpenAPI plus hostile hypothesis
requests, across every endpoint. Every answer must be < 500 and, when 4xx, in the envelope.

    .venv/bin/python bench/fuzz.py --schemathesis 150 --hostile 3600

``--schemathesis N`` is per operation and generation mode (operations without a negative case
generate none); ``--hostile N`` is the total of hand-made hostile requests. Prints the figures;
exits 1 when any answer was a 5xx or a 4xx without the envelope.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.fuzzing import FuzzReport, fuzz_app, run_hostile, run_schemathesis


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schemathesis", type=int, default=150)
    parser.add_argument("--hostile", type=int, default=3600)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the crash handler's log lines would drown the figures
    import os

    os.environ.setdefault("SHIM_DATA_DIR", tempfile.mkdtemp(prefix="shim-fuzz-"))
    app = fuzz_app()
    schema_report, hostile_report = FuzzReport(), FuzzReport()
    started = time.perf_counter()
    run_schemathesis(app, schema_report, args.schemathesis)
    middle = time.perf_counter()
    run_hostile(app, hostile_report, args.hostile)
    ended = time.perf_counter()
    for name, report, seconds in (
        ("schemathesis", schema_report, middle - started),
        ("hostile", hostile_report, ended - middle),
    ):
        print(
            f"{name}: {report.total} requests in {seconds:.0f} s; statuses {dict(sorted(report.statuses.items()))}"
        )
    bad = schema_report.bad + hostile_report.bad
    total = schema_report.total + hostile_report.total
    fives = sum(n for s, n in (schema_report.statuses + hostile_report.statuses).items() if s >= 500)
    print(f"total: {total} requests, {fives} answers >= 500, {len(bad)} bad answers")
    for line in bad[:20]:
        print("  " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

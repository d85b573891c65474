"""``bench/run.sh`` runs this checkout's ``bench/translate.py`` on the baseline's code (deb5485)
as well: the script must run there, or the full run dies at its end (it did once, after 20
minutes, when the script began to call this checkout's new fast paths)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "deb5485"


def _checkout(commit: str, into: Path) -> None:
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:  # a shallow clone: the history is not here
        pytest.skip(f"commit {commit} is not in this clone: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


@pytest.mark.parametrize("root", ["this checkout", BASELINE])
def test_translate_benchmark_runs_on_each_checkout_the_harness_measures(root: str, tmp_path: Path) -> None:
    code = ROOT
    if root == BASELINE:
        _checkout(BASELINE, tmp_path)
        code = tmp_path
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "translate.py"), "--tokens", "50", "--runs", "1"],
        cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line.split()[0] for line in out.stdout.splitlines() if "chunks per CPU second" in line]
    assert lines == ["forward", "reverse"], out.stdout

"""bench/harness.py runs a scenario's comparators in rounds (run 1 of each, then run 2 of each,
the order rotated each round): this VM's speed drifts over minutes, so the old order (one
comparator's three runs, then the next one's) mixed the drift into every ratio. A fake runner
records the order of the measured runs each scenario makes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bench import harness
from bench.harness import FORWARD, Direction, Harness, parse_args, rounds
from bench.servers import Target


class _Proc:
    pid = 0


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Harness, list[tuple[str, int]]]]:
    """A harness whose servers are fakes and whose load runs record (target, clients)."""
    calls: list[tuple[str, int]] = []

    @contextmanager
    def serving(
        self: Harness, target: Target, direction: Direction, tokens: int, delay: float
    ) -> Iterator[tuple[Any, Any, str]]:
        yield _Proc(), _Proc(), f"http://{target.name}"

    def target_of(url: str) -> str:
        return url.removeprefix("http://").split("/", 1)[0]

    def run_wrk(url: str, body: str, clients: int, *args: Any) -> dict[str, Any]:
        calls.append((target_of(url), clients))
        return {"req_per_s": float(len(calls)), "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0}

    def run_streams(url: str, body: str, api: str, clients: int, *args: Any, **kw: Any) -> dict[str, Any]:
        calls.append((target_of(url), clients))
        return {
            "streams_ok": clients,
            "streams_per_s": float(len(calls)),
            "first_delta_p50_ms": 1.0,
            "errors": 0,
            "peak_rss_mib": 70.0,
        }

    monkeypatch.setattr(Harness, "serving", serving)
    monkeypatch.setattr(harness, "run_wrk", run_wrk)
    monkeypatch.setattr(harness, "run_streams", run_streams)
    h = Harness(parse_args(["--baseline", "", "--runs", "3", "--slow-streams", "50"]))
    try:
        yield h, calls
    finally:
        shutil.rmtree(h.data_dir, ignore_errors=True)


NAMES = ["direct", "passthrough", "floor", "shim-1w", "shim-2w"]


def test_rounds_rotate_so_no_target_always_goes_first() -> None:
    order = rounds(["a", "b", "c"], 4)
    assert order == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert {r[0] for r in order} == {"a", "b", "c"}
    assert rounds([], 3) == []


def test_forward_targets_include_the_floor(bench: tuple[Harness, list[tuple[str, int]]]) -> None:
    h, _ = bench
    assert [t.name for t in h.targets(FORWARD)] == NAMES
    assert "floor" not in [t.name for t in h.targets(harness.REVERSE)]


@pytest.mark.parametrize(
    ("scenario", "measured", "labels"),
    [
        ("json", [1, 64], ["s1", "s2"]),  # one client, then 64; 8 is the warm-up
        ("stream", [16], ["s3"]),  # 4 is the warm-up
        ("slow", [50], ["s4"]),
    ],
)
def test_each_scenario_runs_its_comparators_in_rotated_rounds(
    bench: tuple[Harness, list[tuple[str, int]]], scenario: str, measured: list[int], labels: list[str]
) -> None:
    h, calls = bench
    if scenario == "json":
        h.json_scenarios(FORWARD, "s")
    elif scenario == "stream":
        h.stream_scenario(FORWARD, "s3")
    else:
        h.slow_scenario()
    names = [n for n in NAMES if scenario != "slow" or n != "direct"]  # scenario 4 has no direct
    expected = [name for r in rounds(names, 3) for name in r]
    for clients, label in zip(measured, labels, strict=True):
        order = [name for name, c in calls if c == clients]
        # the old harness: direct, direct, direct, passthrough, passthrough, ...
        assert order == expected, label
        assert h.rounds[label] == rounds(names, 3)
        # every target's three runs are kept, in its own order, the table's order unchanged
        assert list(h.results[label]) == names
        assert all(len(entry["runs"]) == 3 for entry in h.results[label].values())
    # each warm-up before any measured run
    first_measured = next(i for i, (_, c) in enumerate(calls) if c in measured)
    assert sorted(n for n, _ in calls[:first_measured]) == sorted(names)


def test_medians_of_an_even_number_of_rounds_keep_counts_whole() -> None:
    runs = [{"errors": 0, "requests": 3, "p50_ms": 1.0}, {"errors": 0, "requests": 4, "p50_ms": 2.0}]
    assert harness._median(runs) == {"errors": 0, "requests": 3.5, "p50_ms": 1.5}
    assert isinstance(harness._median(runs)["errors"], int)

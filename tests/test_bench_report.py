"""bench/report.py's rows for the hosted-tool loop (issue 18): the target read off
``bench/hosted_tool.py``'s medians, and its table."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from bench import report


def _median(hosted_json: float, hosted_stream: float) -> dict[str, Any]:
    def load(shim: float) -> dict[str, float]:
        return {
            "responses": 100,
            "wall_ms": 9.0,
            "shim_cpu_ms": shim,
            "upstream_cpu_ms": 0.2,
            "mcp_cpu_ms": 4.0,
        }

    median: dict[str, Any] = {
        "plain_json": load(0.6),
        "plain_stream": load(1.5),
        "hosted_json": load(hosted_json),
        "hosted_stream": load(hosted_stream),
    }
    median["added_json"] = {"shim_cpu_ms": round(hosted_json - 0.6, 3)}
    median["added_stream"] = {"shim_cpu_ms": round(hosted_stream - 1.5, 3)}
    return median


def _rows(results: dict[str, Any]) -> dict[str, list[str]]:
    lines = report._targets({"baseline": None}, results)[2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:4] for row in cells if row[0].startswith("hosted tool")}


JSON_ROW = "hosted tool: shim CPU per response with one MCP call, JSON (ms)"
STREAM_ROW = "hosted tool: shim CPU per response with one MCP call, streamed (ms)"
ADDED_ROW = "hosted tool: what the MCP round adds over a plain response, JSON (ms of shim CPU)"


@pytest.mark.parametrize(
    ("json_ms", "stream_ms", "json_cell", "stream_cell", "added"),
    [
        (0.9, 1.0, ["≤ 1", "0.900", "met"], ["≤ 1", "1.000", "met"], "+0.300"),
        (7.25, 1.2, ["≤ 1", "7.250", "missed"], ["≤ 1", "1.200", "missed"], "+6.650"),
    ],
)
def test_hosted_target_rows(
    json_ms: float, stream_ms: float, json_cell: list[str], stream_cell: list[str], added: str
) -> None:
    rows = _rows({"hosted": {"shim-1w": {"median": _median(json_ms, stream_ms), "runs": {}}}})
    assert rows[JSON_ROW] == json_cell
    assert rows[STREAM_ROW] == stream_cell
    assert rows[ADDED_ROW] == ["(reported)", added, "reported"]


def test_hosted_rows_without_the_scenario() -> None:
    rows = _rows({})
    assert rows[JSON_ROW] == ["≤ 1", "—", "—"]
    assert rows[ADDED_ROW] == ["(reported)", "—", "reported"]


def test_hosted_section_in_the_results_file() -> None:
    env = {
        "date": "2026-12-07 21:00 UTC",
        "mode": "quick",
        "commit": "abc1234",
        "python": "3.11.7",
        "cpus": 2,
        "server_cpus": "0",
        "load_cpus": "1",
        "runs": 1,
        "loadavg_before": (1.0, 1.0, 1.0),
        "loadavg_after": (1.0, 1.0, 1.0),
        "elapsed_s": 50.0,
        "baseline": None,
    }
    md, data = report.render(
        env, {"hosted": {"shim-1w": {"median": _median(5.0, 6.0), "runs": {}}}}, [], None
    )
    section = md.split("## Hosted tool loop", 1)[1].split("\n## ", 1)[0]
    assert (
        "| one MCP call, JSON (tools listed, one call, two upstream rounds) | 5.000 | 0.200 | 4.000 |"
        in section
    )
    assert "| what the hosted round adds, stream | +4.500 |" in section
    assert "## Issue 18's targets" in md and data["results"]["hosted"]["shim-1w"]["median"]["hosted_json"]


_CPU = {"server_cpu_s": 10.0, "upstream_cpu_s": 1.0, "load_cpu_s": 1.0}


def _wrk(req_s: float, p50: float, cpu: float) -> dict[str, Any]:
    return {
        "req_per_s": req_s,
        "p50_ms": p50,
        "p99_ms": p50 * 2,
        "srv_cpu_ms_per_req": cpu,
        "errors": 0,
        "peak_rss_mib": 60.0,
        **_CPU,
    }


def _slow(idle: float, peak: float) -> dict[str, Any]:
    return {
        "clients": 1000,
        "idle_rss_mib": idle,
        "peak_rss_mib": peak,
        "streams_ok": 1000,
        "errors": 0,
        "total_p50_ms": 5000.0,
        **_CPU,
    }


def _entry(*runs: dict[str, Any]) -> dict[str, Any]:
    """A target's figures as the harness stores them: the median and every round's run."""
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    return {"median": median, "runs": list(runs)}


def _interleaved_results() -> dict[str, Any]:
    # rounds drift: the second round ran on a faster machine for both shim and deb5485
    return {
        "s1": {
            "direct": _entry(_wrk(9000, 0.10, 0.04), _wrk(9000, 0.10, 0.04), _wrk(9000, 0.10, 0.04)),
            "floor": _entry(_wrk(2500, 0.40, 0.30), _wrk(2600, 0.38, 0.29), _wrk(2500, 0.40, 0.30)),
            "shim-1w": _entry(_wrk(2000, 0.50, 0.45), _wrk(2100, 0.48, 0.43), _wrk(2000, 0.50, 0.45)),
        },
        "s2": {
            "shim-1w": _entry(_wrk(2400, 20, 0.40), _wrk(3000, 18, 0.33), _wrk(2500, 20, 0.40)),
            "deb5485": _entry(_wrk(2000, 25, 0.48), _wrk(2500, 22, 0.40), _wrk(2000, 25, 0.48)),
            "floor": _entry(_wrk(4000, 15, 0.25), _wrk(5000, 12, 0.20), _wrk(4000, 15, 0.25)),
            # 80,000 requests in each run: the upstream's and wrk's 2 CPU s are 0.025 ms a request
            "shim-2w": _entry(*[{**_wrk(4000, 10, 0.42), "requests": 80_000}] * 3),
        },
        "s4": {
            "floor": _entry(_slow(40, 70), _slow(70, 72), _slow(72, 73)),
            "shim-1w": _entry(_slow(60, 105), _slow(105, 107), _slow(107, 108)),
        },
    }


def _all_rows(results: dict[str, Any]) -> dict[str, list[str]]:
    lines = report._targets({"baseline": "deb5485", "cpus": 2}, results)[2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in cells}


@pytest.mark.parametrize(
    ("row", "cells"),
    [
        # ratio of the medians, and each round's ratio: 2400/2000, 3000/2500, 2500/2000
        ("64 clients: req/s, shim ÷ deb5485", ["≥ 1.3", "1.25", "missed", "1.20 · 1.20 · 1.25"]),
        ("one client: added p50 over direct (ms)", ["≤ 0.35", "0.400", "missed", "0.400 · 0.380 · 0.400"]),
        # the floor: a target it misses is out of reach for any proxy on this stack
        (
            "floor: one client, added p50 over direct (ms)",
            ["≤ 0.35", "0.300", "within reach", "0.300 · 0.280 · 0.300"],
        ),
        (
            "one client: added p50, shim - floor (ms)",
            ["(reported)", "+0.100", "reported", "+0.100 · +0.100 · +0.100"],
        ),
        (
            "one client: CPU per request, shim ÷ floor",
            ["(reported)", "1.50", "reported", "1.50 · 1.48 · 1.50"],
        ),
        (
            "64 clients: CPU per request, shim ÷ floor",
            ["(reported)", "1.60", "reported", "1.60 · 1.65 · 1.60"],
        ),
        # scenario 4 from its first run: (70 - 40) MiB / 1000 streams; no per-round figure (a
        # later round starts at the peak the one before left)
        ("floor: KB per open stream", ["≤ 8", "30.7", "out of reach on this stack", ""]),
        ("KB per open stream, shim - floor", ["(reported)", "+15.4", "reported", ""]),
        # two cores ÷ (one worker's 0.40 ms + the others' 0.025 ms a request) ÷ one worker's 2,500/s;
        # round 1: 2000 / 0.425 / 2400, round 2: 2000 / 0.355 / 3000
        (
            "two workers: the most this layout allows (÷ one worker)",
            ["≥ 1.8", "1.88", "within reach", "1.96 · 1.88 · 1.88"],
        ),
        ("two workers: measured ÷ that ceiling", ["(reported)", "0.85", "reported", "0.85 · 0.71 · 0.85"]),
    ],
)
def test_target_rows_read_medians_and_each_round(row: str, cells: list[str]) -> None:
    assert _all_rows(_interleaved_results())[row] == cells


def test_the_two_worker_ceiling_out_of_reach() -> None:
    """A shim cheap enough that the upstream's and wrk's share of the cores caps two workers."""
    results = _interleaved_results()
    two = results["s2"]["shim-2w"]
    two["median"] = {**two["median"], "upstream_cpu_s": 8.0, "load_cpu_s": 8.0}  # 0.2 ms a request
    cells = _all_rows(results)["two workers: the most this layout allows (÷ one worker)"]
    assert cells[1:3] == ["1.33", "out of reach on this layout"]  # 2000 / 0.6 / 2500


def test_no_floor_rows_without_the_floor() -> None:
    results = _interleaved_results()
    for label in results:
        results[label].pop("floor")
    assert not [row for row in _all_rows(results) if "floor" in row]


def test_rounds_section_shows_each_round_and_the_spread() -> None:
    env = {
        "date": "2026-12-07 23:00 UTC",
        "mode": "full",
        "commit": "abc1234",
        "python": "3.11.7",
        "cpus": 2,
        "server_cpus": "0",
        "load_cpus": "1",
        "runs": 3,
        "loadavg_before": (1.0, 1.0, 1.0),
        "loadavg_after": (1.0, 1.0, 1.0),
        "elapsed_s": 1500.0,
        "baseline": "deb5485",
    }
    order = [
        ["shim-1w", "deb5485", "floor"],
        ["deb5485", "floor", "shim-1w"],
        ["floor", "shim-1w", "deb5485"],
    ]
    md, data = report.render(env, _interleaved_results(), [], None, {"s2": order})
    section = md.split("## Rounds: each run's headline figure", 1)[1]
    assert "1: shim-1w, deb5485, floor; 2: deb5485, floor, shim-1w; 3: floor, shim-1w, deb5485" in section
    # (3000 - 2400) / 2500
    assert "| shim-1w | 2,400 | 3,000 | 2,500 | 24% |" in section
    assert data["rounds"] == {"s2": order}

"""bench/report.py's rows for the hosted-tool loop (issue 18): the target read off
``bench/hosted_tool.py``'s medians, and its table."""

from __future__ import annotations

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

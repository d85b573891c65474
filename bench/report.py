"""The results as a Markdown table per scenario (medians of the runs) and as JSON (every run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["brief", "render"]

Row = dict[str, Any]


def brief(r: Row) -> str:
    if "req_per_s" in r:
        return f"{r['req_per_s']:,.0f} req/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms errors {r['errors']}"
    return (
        f"{r['streams_ok']} streams ({r['streams_per_s']:,.1f}/s) first delta p50 {r['first_delta_p50_ms']} ms "
        f"errors {r['errors']} peak RSS {r['peak_rss_mib']} MiB"
    )


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _cpu(r: Row) -> str:
    """CPU seconds of server / upstream / load generator during the run."""
    up = r.get("upstream_cpu_s")
    return f"{_f(r['server_cpu_s'], 1)} / {_f(up, 1)} / {_f(r['load_cpu_s'], 1)}"


def _per_request(r: Row) -> str:
    """Server CPU milliseconds per request: steadier than req/s when the machine is shared."""
    return _f(r.get("srv_cpu_ms_per_req"), 3)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _per_target(res: dict[str, Row], row: Callable[[str, Row], dict[str, str]]) -> list[str]:
    """One table row per target from its medians; ``row`` maps each column's header to its cell."""
    rows = [row(name, entry["median"]) for name, entry in res.items()]
    return _table(list(rows[0]), [list(r.values()) for r in rows]) if rows else []


def _latency(res: dict[str, Row]) -> list[str]:
    direct = res.get("direct", {}).get("median")

    def row(name: str, m: Row) -> dict[str, str]:
        add50 = m["p50_ms"] - direct["p50_ms"] if direct and name != "direct" else None
        add99 = m["p99_ms"] - direct["p99_ms"] if direct and name != "direct" else None
        return {
            "target": name,
            "req/s": _f(m["req_per_s"], 0),
            "p50 ms": _f(m["p50_ms"], 3),
            "p99 ms": _f(m["p99_ms"], 3),
            "added p50 ms": _f(add50, 3),
            "added p99 ms": _f(add99, 3),
            "srv CPU ms/req": _per_request(m),
            "CPU s srv/up/load": _cpu(m),
            "errors": str(m["errors"]),
        }

    return _per_target(res, row)


def _throughput(res: dict[str, Row]) -> list[str]:
    floor = res.get("passthrough", {}).get("median")
    litellm = res.get("litellm", {}).get("median")

    def row(name: str, m: Row) -> dict[str, str]:
        ratio = _ratio(m["req_per_s"], _field(floor, "req_per_s"))
        vs_litellm = _ratio(m["req_per_s"], _field(litellm, "req_per_s"))
        return {
            "target": name,
            "req/s": _f(m["req_per_s"], 0),
            "x passthrough": _f(ratio, 2),
            "x LiteLLM": _f(vs_litellm, 1),
            "p50 ms": _f(m["p50_ms"], 2),
            "p99 ms": _f(m["p99_ms"], 2),
            "srv CPU ms/req": _per_request(m),
            "CPU s srv/up/load": _cpu(m),
            "peak RSS MiB": _f(m["peak_rss_mib"], 0),
            "errors": str(m["errors"]),
        }

    return _per_target(res, row)


def _streams(res: dict[str, Row], tokens: int = 200) -> list[str]:
    def row(name: str, m: Row) -> dict[str, str]:
        chunks = m["streams_ok"] * tokens
        per_m = m["server_cpu_s"] / chunks * 1e6 if chunks else None
        return {
            "target": name,
            "streams/s": _f(m["streams_per_s"], 1),
            "text chunks/s": _f(m["streams_per_s"] * tokens, 0),
            "TTFB p50 ms": _f(m["ttfb_p50_ms"], 1),
            "first delta p50 ms": _f(m["first_delta_p50_ms"], 1),
            "end p50 ms": _f(m["total_p50_ms"], 1),
            "srv CPU s / M chunks": _f(per_m, 1),
            "CPU s srv/up/load": _cpu(m),
            "peak RSS MiB": _f(m["peak_rss_mib"], 0),
            "errors": str(m["errors"]),
        }

    return _per_target(res, row)


def _slow_first(entry: dict[str, Any]) -> Row:
    """Scenario 4's figures from the first run: later runs start where the one before left the
    process's memory (the allocator keeps what 1,000 streams used), so their "idle" is the peak."""
    first: Row = entry["runs"][0]
    return {**first, "peak_rss_mib": max(r["peak_rss_mib"] for r in entry["runs"])}


def _slow(res: dict[str, Any]) -> list[str]:
    rows = []
    for name, entry in res.items():
        m = _slow_first(entry)
        n = m["clients"]
        per = (entry["runs"][0]["peak_rss_mib"] - m["idle_rss_mib"]) * 1024 / n if n else None
        rows.append(
            [
                name,
                f"{m['streams_ok']:.0f}/{n}",
                str(m["errors"]),
                _f(m["idle_rss_mib"], 0),
                _f(m["peak_rss_mib"], 0),
                _f(per, 1),
                _f(m["total_p50_ms"] / 1000 if m["total_p50_ms"] else None, 2),
                _cpu(m),
            ]
        )
    header = ["target", "complete", "errors", "idle RSS MiB (first run)", "peak RSS MiB (all runs)"]
    header += ["KB per open stream (first run)", "end p50 s", "CPU s srv/up/load"]
    return _table(header, rows)


def _translate(res: dict[str, Row]) -> list[str]:
    def row(name: str, m: Row) -> dict[str, str]:
        return {
            "code": name,
            "forward (Chat SSE → Responses SSE)": _f(m.get("forward"), 0),
            "reverse (Responses SSE → Chat SSE)": _f(m.get("reverse"), 0),
        }

    return _per_target(res, row)


_HOSTED_ROWS = {
    "plain_json": "plain, JSON (one upstream round, no tool)",
    "plain_stream": "plain, streamed",
    "hosted_json": "one MCP call, JSON (tools listed, one call, two upstream rounds)",
    "hosted_stream": "one MCP call, streamed",
}


def hosted_table(median: Row) -> list[str]:
    """``bench/hosted_tool.py``'s medians: the shim's CPU per response, and the other processes'."""
    rows = []
    for load, name in _HOSTED_ROWS.items():
        m = median.get(load)
        if m:
            cells = [m["shim_cpu_ms"], m["upstream_cpu_ms"], m["mcp_cpu_ms"], m["wall_ms"]]
            rows.append([name, *(_f(v, 3) for v in cells), _f(m["responses"], 0)])
    for way in ("json", "stream"):
        added = median.get(f"added_{way}")
        if added:
            rows.append(
                [f"what the hosted round adds, {way}", f"{added['shim_cpu_ms']:+.3f}", "", "", "", ""]
            )
    header = ["response", "shim CPU ms / response", "upstream CPU ms", "MCP server CPU ms", "wall ms"]
    return _table([*header, "responses (median)"], rows)


def _hosted(res: dict[str, Any]) -> list[str]:
    entry = res.get("shim-1w")
    return hosted_table(entry["median"]) if entry else []


_SECTIONS = [
    (
        "s1",
        "1. Non-streaming, one client (50 tokens): added latency over direct",
        "p50 ≤ 0.5 ms added",
        _latency,
    ),
    ("s2", "2. Non-streaming, 64 clients", "≥ 1,000 req/s per worker, ≥ 10x LiteLLM", _throughput),
    (
        "s3",
        "3. Streaming, 200-chunk answers, 16 clients",
        "≥ 250 streams/s, first delta p50 < 82 ms",
        _streams,
    ),
    ("s4", "4. Concurrent slow streams (one chunk per 100 ms)", "≤ 64 KB per open stream, 0 errors", _slow),
    (
        "translate",
        "Translator micro-benchmark: chunks per CPU second (bench/translate.py, median of 21)",
        "≥ 400,000 both ways",
        _translate,
    ),
    (
        "hosted",
        "Hosted tool loop: a response with one MCP call (bench/hosted_tool.py; one client, medians)",
        "≤ 1 ms of shim CPU per response; the fake upstream and the MCP server (the mcp SDK, streamable "
        "HTTP) are processes of their own, so their CPU is not in the shim's figure",
        _hosted,
    ),
    ("s5.1", "5.1 Chat Completions over a Responses upstream: one client", "as 1", _latency),
    ("s5.2", "5.2 Chat Completions over a Responses upstream: 64 clients", "as 2", _throughput),
    ("s5.3", "5.3 Chat Completions over a Responses upstream: streams", "as 3", _streams),
]


Get = Callable[[str, str | None], Row | None]


def _m(results: dict[str, dict[str, Row]], label: str, target: str | None) -> Row | None:
    entry = results.get(label, {}).get(target) if target else None
    return entry["median"] if entry else None


def _medians(results: dict[str, dict[str, Any]]) -> Get:
    return lambda label, target: _m(results, label, target)


def _round(results: dict[str, dict[str, Any]], i: int) -> Get:
    """Run ``i`` of each target: the runs of one round were taken seconds apart (the harness
    interleaves them), so a ratio within a round is free of the drift between rounds."""

    def get(label: str, target: str | None) -> Row | None:
        entry = results.get(label, {}).get(target) if target else None
        runs = entry.get("runs") if entry else None
        return runs[i] if isinstance(runs, list) and i < len(runs) else None

    return get


def _field(r: Row | None, key: str) -> float | None:
    value = r.get(key) if r else None
    return float(value) if isinstance(value, int | float) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _per_stream(r: Row | None) -> float | None:
    return r["server_cpu_s"] / max(r["streams_ok"], 1) if r else None


def _added_p50(get: Get, target: str) -> float | None:
    m, d = get("s1", target), get("s1", "direct")
    return m["p50_ms"] - d["p50_ms"] if m and d else None


def _kb_per_stream(results: dict[str, dict[str, Any]], target: str) -> float | None:
    """Scenario 4's first run: (peak - idle RSS) / streams."""
    entry = results.get("s4", {}).get(target)
    if not entry:
        return None
    first = entry["runs"][0]
    n = first["clients"]
    return (first["peak_rss_mib"] - first["idle_rss_mib"]) * 1024 / n if n else None


def _cpu_ratio(get: Get, label: str, a: str | None, b: str | None) -> float | None:
    """Server CPU per request, ``a`` ÷ ``b``."""
    x, y = get(label, a), get(label, b)
    return _ratio(_field(x, "srv_cpu_ms_per_req"), _field(y, "srv_cpu_ms_per_req"))


def _targets(env: dict[str, Any], results: dict[str, dict[str, Row]]) -> list[str]:
    """Issue 18's targets as ratios of figures measured in this run (absolute-free where it can),
    then the shim against the stack floor (``bench/floor.py``). ``per round``: the figure of each
    round of interleaved runs, where both sides have one (the drift between rounds shows there)."""
    base = env.get("baseline")
    shim, two = "shim-1w", "shim-2w"
    # (what, wanted, value from a view of the results, the target's check, format, kind): kind
    # "floor…" for the floor's own figures, "…whole" for figures with no per-round reading
    rows: list[tuple[str, str, Callable[[Get], float | None], Callable[[float], bool], str, str]] = []

    def add(
        what: str,
        target: str,
        value: Callable[[Get], float | None],
        ok: Callable[[float], bool],
        fmt: str = "{:.2f}",
        kind: str = "target",
    ) -> None:
        rows.append((what, target, value, ok, fmt, kind))

    def req_s(label: str, a: str | None, b: str | None) -> Callable[[Get], float | None]:
        def value(get: Get) -> float | None:
            x, y = get(label, a), get(label, b)
            return _ratio(_field(x, "req_per_s"), _field(y, "req_per_s"))

        return value

    add(f"64 clients: req/s, shim ÷ {base}", "≥ 1.3", req_s("s2", shim, base), lambda v: v >= 1.3)
    add(
        f"64 clients: CPU per request, {base} ÷ shim (the same, by CPU time)",
        "≥ 1.3",
        lambda get: _cpu_ratio(get, "s2", base, shim),
        lambda v: v >= 1.3,
    )
    add(
        "64 clients: req/s, shim ÷ passthrough", "≥ 0.9", req_s("s2", shim, "passthrough"), lambda v: v >= 0.9
    )
    add(
        "one client: added p50 over direct (ms)",
        "≤ 0.35",
        lambda get: _added_p50(get, shim),
        lambda v: v <= 0.35,
        "{:.3f}",
    )

    def streams(get: Get) -> float | None:
        x, y = get("s3", shim), get("s3", base)
        return _ratio(_field(x, "streams_per_s"), _field(y, "streams_per_s"))

    add(f"streams: streams/s, shim ÷ {base}", "≥ 1.5", streams, lambda v: v >= 1.5)
    add(
        f"streams: CPU per stream, {base} ÷ shim",
        "≥ 1.5",
        lambda get: _ratio(_per_stream(get("s3", base)), _per_stream(get("s3", shim))),
        lambda v: v >= 1.5,
    )

    def first_delta(get: Get) -> float | None:
        x, y = get("s3", shim), get("s3", base)
        return _ratio(_field(x, "first_delta_p50_ms"), _field(y, "first_delta_p50_ms"))

    add(
        f"streams: first text delta p50, shim ÷ {base}",
        "(≤ ⅓ of responses.js: not built here)",
        first_delta,
        lambda v: True,
    )
    s4_entry = results.get("s4", {}).get(shim)
    s4 = _slow_first(s4_entry) if s4_entry else None
    add(
        "idle RSS (MiB, before scenario 4's first run)",
        "≤ 80",
        lambda get: _field(s4, "idle_rss_mib"),
        lambda v: v <= 80,
        "{:.1f}",
        "whole",
    )
    n = s4["clients"] if s4 else 0
    add(
        f"peak RSS under {n:.0f} slow streams (MiB)",
        "≤ 120 (at 1,000)",
        lambda get: _field(s4, "peak_rss_mib"),
        lambda v: v <= 120,
        "{:.1f}",
        "whole",
    )
    add(
        "KB per open stream",
        "≤ 8",
        lambda get: _kb_per_stream(results, shim),
        lambda v: v <= 8,
        "{:.1f}",
        "whole",
    )
    add("two workers ÷ one worker, 64 clients req/s", "≥ 1.8", req_s("s2", two, shim), lambda v: v >= 1.8)
    cores = env.get("cpus")
    if isinstance(cores, int) and cores > 0:
        _two_worker_ceiling(cores, add)
    tr = _m(results, "translate", "shim")
    for way in ("forward", "reverse"):
        add(
            f"translator {way}: chunks per CPU second",
            "≥ 400,000",
            lambda get, way=way: _field(tr, way),  # type: ignore[misc]
            lambda v: v >= 400_000,
            "{:,.0f}",
            "whole",
        )
    hosted = results.get("hosted", {}).get(shim)
    for way, name in (("json", "JSON"), ("stream", "streamed")):
        m = hosted["median"].get(f"hosted_{way}") if hosted else None
        add(
            f"hosted tool: shim CPU per response with one MCP call, {name} (ms)",
            "≤ 1",
            lambda get, m=m: _field(m, "shim_cpu_ms"),  # type: ignore[misc]
            lambda v: v <= 1,
            "{:.3f}",
            "whole",
        )
    added = hosted["median"].get("added_json") if hosted else None
    add(
        "hosted tool: what the MCP round adds over a plain response, JSON (ms of shim CPU)",
        "(reported)",
        lambda get: _field(added, "shim_cpu_ms"),
        lambda v: True,
        "{:+.3f}",
        "whole",
    )
    if "floor" in results.get("s1", {}) or "floor" in results.get("s4", {}):
        _floor_rows(results, add)
    return _render_rows(results, rows)


def _layout_ceiling(get: Get, cores: int) -> float | None:
    """The most two workers can reach over one at 64 clients on this layout, where the upstream and
    the load generator share the workers' cores: ``cores`` CPU-ms per ms, spent per request on one
    worker's CPU plus the upstream's and the load generator's (as measured in the two-worker run),
    against one worker's measured rate."""
    one, two = get("s2", "shim-1w"), get("s2", "shim-2w")
    per_request = _field(one, "srv_cpu_ms_per_req")
    rate = _field(one, "req_per_s")
    requests = _field(two, "requests")
    if two is None or per_request is None or not rate or not requests:
        return None
    others = (two.get("upstream_cpu_s") or 0.0) + two["load_cpu_s"]
    return cores * 1000 / (per_request + others * 1000 / requests) / rate


def _two_worker_ceiling(cores: int, add: Callable[..., None]) -> None:
    add(
        "two workers: the most this layout allows (÷ one worker)",
        "≥ 1.8",
        lambda get: _layout_ceiling(get, cores),
        lambda v: v >= 1.8,
        "{:.2f}",
        "ceiling",
    )

    def share(get: Get) -> float | None:
        ceiling = _layout_ceiling(get, cores)
        return _ratio(
            _ratio(_field(get("s2", "shim-2w"), "req_per_s"), _field(get("s2", "shim-1w"), "req_per_s")),
            ceiling,
        )

    add("two workers: measured ÷ that ceiling", "(reported)", share, lambda v: True)


def _floor_rows(results: dict[str, dict[str, Any]], add: Callable[..., None]) -> None:
    """The shim against ``floor`` (bench/floor.py, a raw ASGI relay on the same stack): a target
    the floor itself misses is out of reach on this stack, by the distance shown."""
    shim, floor = "shim-1w", "floor"
    add(
        "floor: one client, added p50 over direct (ms)",
        "≤ 0.35",
        lambda get: _added_p50(get, floor),
        lambda v: v <= 0.35,
        "{:.3f}",
        "floor",
    )

    def gap(get: Get) -> float | None:
        a, b = _added_p50(get, shim), _added_p50(get, floor)
        return a - b if a is not None and b is not None else None

    add("one client: added p50, shim - floor (ms)", "(reported)", gap, lambda v: True, "{:+.3f}")
    for label, what in (("s1", "one client"), ("s2", "64 clients")):
        add(
            f"{what}: CPU per request, shim ÷ floor",
            "(reported)",
            lambda get, label=label: _cpu_ratio(get, label, shim, floor),
            lambda v: True,
        )
    add(
        "streams: CPU per stream, shim ÷ floor",
        "(reported)",
        lambda get: _ratio(_per_stream(get("s3", shim)), _per_stream(get("s3", floor))),
        lambda v: True,
    )
    add(
        "floor: KB per open stream",
        "≤ 8",
        lambda get: _kb_per_stream(results, floor),
        lambda v: v <= 8,
        "{:.1f}",
        "floor, whole",
    )

    def kb_gap(get: Get) -> float | None:
        a, b = _kb_per_stream(results, shim), _kb_per_stream(results, floor)
        return a - b if a is not None and b is not None else None

    add("KB per open stream, shim - floor", "(reported)", kb_gap, lambda v: True, "{:+.1f}", "whole")


def _render_rows(
    results: dict[str, dict[str, Any]],
    rows: list[tuple[str, str, Callable[[Get], float | None], Callable[[float], bool], str, str]],
) -> list[str]:
    n_rounds = max(
        (len(e["runs"]) for res in results.values() for e in res.values() if isinstance(e.get("runs"), list)),
        default=0,
    )
    views = [_round(results, i) for i in range(n_rounds)] if n_rounds > 1 else []
    out = []
    for what, target, value_of, ok, fmt, kind in rows:
        value = value_of(_medians(results))
        if value is None:
            met = "—"
        elif kind.startswith("floor"):  # the floor missing a target: no proxy on this stack meets it
            met = "within reach" if ok(value) else "out of reach on this stack"
        elif kind == "ceiling":  # the cores this layout leaves the workers cannot give more
            met = "within reach" if ok(value) else "out of reach on this layout"
        else:
            met = "met" if ok(value) else "missed"
        if target.startswith("("):  # reported, no target this run can check
            met = "reported"
        per_round = [value_of(v) for v in views] if not kind.endswith("whole") else []
        cell = " · ".join("—" if v is None else fmt.format(v) for v in per_round)
        out.append(
            [
                what,
                target,
                "—" if value is None else fmt.format(value),
                met,
                cell if any(v is not None for v in per_round) else "",
            ]
        )
    return _table(["target (issue 18)", "wanted", "measured (medians)", "", "per round"], out)


_HEADLINE = {
    "s1": ("p50 ms", "p50_ms", 3),
    "s2": ("req/s", "req_per_s", 0),
    "s3": ("streams/s", "streams_per_s", 1),
    "s4": ("peak RSS MiB", "peak_rss_mib", 1),
}


def _rounds_section(results: dict[str, dict[str, Any]], order: dict[str, list[list[str]]]) -> list[str]:
    """Each round's headline figure per target, with the order the round ran them in and the
    spread across rounds ((max - min) / median): the machine's drift, made visible."""
    lines: list[str] = []
    for label, turns in order.items():
        if len(turns) < 2 or label not in results:
            continue
        name, key, digits = _HEADLINE.get(label.replace("s5.", "s"), ("", "", 0))  # 5.x: as x
        if not key:
            continue
        header = ["target", *(f"round {i + 1}" for i in range(len(turns))), "spread"]
        rows = []
        for target, entry in results[label].items():
            values = [r.get(key) for r in entry["runs"]]
            nums = [v for v in values if isinstance(v, int | float)]
            mid = sorted(nums)[len(nums) // 2] if nums else 0
            spread = f"{(max(nums) - min(nums)) / mid * 100:.0f}%" if nums and mid else "—"
            rows.append([target, *(_f(v, digits) for v in values), spread])
        sequence = "; ".join(f"{i + 1}: " + ", ".join(t) for i, t in enumerate(turns))
        lines += [f"**{label}** ({name}; order per round — {sequence})", "", *_table(header, rows), ""]
    return lines


def _capacity(results: dict[str, dict[str, Row]]) -> str:
    parts = []
    for label, what in (("s1", "one client"), ("s2", "64 clients")):
        d = results.get(label, {}).get("direct")
        if d:
            m = d["median"]
            parts.append(f"{m['req_per_s']:,.0f} req/s at {what} (p50 {m['p50_ms']:.3f} ms)")
    d = results.get("s3", {}).get("direct")
    if d:
        parts.append(f"{d['median']['streams_per_s']:,.0f} 200-chunk streams/s at 16 clients")
    return (
        "Fake upstream alone (its capacity, on the server core): "
        + ("; ".join(parts) or "not measured")
        + "."
    )


def render(
    env: dict[str, Any],
    results: dict[str, dict[str, Row]],
    notes: list[str],
    profile: dict[str, Any] | None,
    rounds: dict[str, list[list[str]]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The Markdown file and the JSON data; ``rounds``: per scenario, the targets' order in each
    round of interleaved runs (``bench.harness``)."""
    rounds = rounds or {}
    la_b = ", ".join(f"{x:.2f}" for x in env["loadavg_before"])
    la_a = ", ".join(f"{x:.2f}" for x in env["loadavg_after"])
    lines = [
        f"# Benchmark {env['date']} ({env['mode']})",
        "",
        f"Commit {env['commit']}, Python {env['python']}, {env['cpus']} cores; server on core(s) "
        f"{env['server_cpus']}, load generator and fake upstream on {env['load_cpus']} (two shim workers: every "
        f"core). Medians of {env['runs']} run(s). Load average before {la_b}, after {la_a}. "
        f"Took {env['elapsed_s']} s.",
        "",
        _capacity(results),
        "CPU columns: CPU seconds used during the run by the server / the fake upstream / the load generator.",
        "",
    ]
    if env.get("litellm"):
        lines += [f"LiteLLM {env['litellm']}.", ""]
    has_floor = "floor" in results.get("s1", {}) or "floor" in results.get("s4", {})
    if env.get("baseline") or "translate" in results or "hosted" in results or has_floor:
        lines += [
            "## Issue 18's targets",
            "",
            (
                f"Ratios against {env['baseline']} (the shim of issue 18's measurement), run back to back "
                "with this checkout in each scenario below; the absolute ones as measured. "
                if env.get("baseline")
                else "No baseline in this run (`--baseline ''`): its ratios read —. "
            )
            + "Every scenario "
            "runs its comparators in rounds (run 1 of each, then run 2 of each, the order rotated); "
            "*per round* gives each round's figure, so the machine's drift between rounds shows. "
            "The `floor` rows compare the shim with `bench/floor.py` (a raw ASGI relay on the same "
            "uvicorn and upstream transport): a target the floor misses is out of reach on this stack.",
            "",
            *_targets(env, results),
            "",
        ]
    for label, title, target, table in _SECTIONS:
        if label in results:
            lines += [f"## {title}", "", f"Target: {target}.", "", *table(results[label]), ""]
    lines += ["## 6. Store chain", "", "See `bench/store_chain.py` (separate harness).", ""]
    drift = _rounds_section(results, rounds)
    if drift:
        lines += ["## Rounds: each run's headline figure", "", *drift]
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    if profile:
        lines += ["## Profile: shim-1w under scenario 2 (py-spy)", "", profile["summary"], ""]
    data = {"env": env, "results": results, "notes": notes, "profile": profile, "rounds": rounds}
    return "\n".join(lines), data

"""The benchmark harness of issue 7: every comparator, every scenario, one command.

    bash bench/run.sh                 # full run (about 29 minutes), writes bench/results/<date>.md/.json
    bash bench/run.sh --quick         # short durations, one run: proves the harness end to end
    bash bench/run.sh --litellm       # also LiteLLM (installed into ~/.cache/shim/bench-litellm)
    bash bench/run.sh --profile       # also py-spy of the shim under scenario 2

Comparators, started here in the same run: ``direct`` (the fake upstream itself: the limit),
``passthrough`` (Litestar + httpx relaying bytes), ``floor`` (``bench/floor.py``: a raw ASGI app
on uvicorn relaying bytes through the shim's transport, the least a proxy costs on this stack;
scenarios 1-4), ``shim-1w`` and
``shim-2w`` (one and two uvicorn workers), the baseline commit (``--baseline``, default deb5485:
the shim of issue 18's measurement, checked out into a temporary folder with ``git archive`` and
run one worker, back to back with this one in every scenario of the Open Responses direction),
and ``litellm`` on request. Servers are pinned to ``--server-cpus``; the load generator and the
fake upstream share ``--load-cpus``. (``direct`` puts the upstream on the server cores; two shim
workers get every core, see the report.) The translator micro-benchmark (``bench/translate.py``,
CPU time) runs on this checkout and the baseline too; scenario ``h`` (``bench/hosted_tool.py``)
measures the shim's CPU for a response with one hosted MCP call. Issue 18's targets are read off
these as ratios (``bench.report``).

Within a scenario every comparator is started once and their runs take turns: run 1 of each,
then run 2 of each (the order rotated by one each round), ... (``rounds``). This VM's core speed
drifts over minutes, so a ratio between comparators is read off runs taken seconds apart; the
results file shows each round's figures and ratios, so the drift itself is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench import report
from bench.load import run_streams, run_wrk
from bench.servers import ROOT, Proc, Target, start_target, start_upstream

RESPONSES_BODY = {"model": "fake", "input": "Say hello.", "max_output_tokens": 64, "store": False}
CHAT_BODY = {"model": "fake", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 64}
_STREAM = {"stream": True}
_CHAT_STREAM = {"stream": True, "stream_options": {"include_usage": True}}


@dataclass(frozen=True)
class Direction:
    """Which API the clients speak and which one the upstream speaks."""

    name: str
    client_api: str  # responses | chat
    upstream_kind: str  # chat | responses

    def call(self, target: Target, stream: bool) -> tuple[str, str, str]:
        """(path, body, api) a client sends to this target."""
        api = self.client_api if target.kind in ("shim", "litellm") else self.upstream_kind
        if api == "responses":
            body = {**RESPONSES_BODY, **(_STREAM if stream else {})}
            return "/v1/responses", json.dumps(body), "responses"
        body = {**CHAT_BODY, **(_CHAT_STREAM if stream else {})}
        return "/v1/chat/completions", json.dumps(body), "chat"


FORWARD = Direction("forward", "responses", "chat")
REVERSE = Direction("reverse", "chat", "responses")


@dataclass(frozen=True)
class Plan:
    runs: int
    latency_s: float
    throughput_s: float
    stream_s: float
    warmup_s: float
    slow_streams: int
    slow_tokens: int


FULL = Plan(runs=3, latency_s=10, throughput_s=20, stream_s=20, warmup_s=2, slow_streams=1000, slow_tokens=50)
QUICK = Plan(runs=1, latency_s=2, throughput_s=3, stream_s=3, warmup_s=1, slow_streams=200, slow_tokens=20)


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in runs[0]:
        values = [
            r[key] for r in runs if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)
        ]
        if len(values) == len(runs):
            median = round(statistics.median(values), 3)
            # counts stay counts (an even number of runs gives a mean of the middle two)
            integral = all(isinstance(v, int) for v in values) and median == int(median)
            out[key] = int(median) if integral else median
        else:
            out[key] = runs[-1][key]
    return out


def rounds(names: list[str], runs: int) -> list[list[str]]:
    """The order of each round: every target once, the list rotated by one more each round, so
    no target always goes first (nor always right after the same one but for the wrap)."""
    n = len(names)
    return [names[r % n :] + names[: r % n] for r in range(runs)] if n else []


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plan = QUICK if args.quick else FULL
        if args.runs:
            self.plan = Plan(**{**self.plan.__dict__, "runs": args.runs})
        if args.slow_streams:
            self.plan = Plan(**{**self.plan.__dict__, "slow_streams": args.slow_streams})
        self.data_dir = Path(tempfile.mkdtemp(prefix="bench-data-"))
        self.baseline: tuple[str, Path] | None = None
        if args.baseline:
            root = self.data_dir / f"baseline-{args.baseline}"
            root.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True)
            if archive.returncode != 0:  # a shallow clone, or not a git checkout
                raise SystemExit(
                    f"bench: cannot check out the baseline {args.baseline}: {archive.stderr.decode().strip()}"
                    " (fetch it, or pass --baseline '')"
                )
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
            self.baseline = (args.baseline, root)
        self.results: dict[str, dict[str, Any]] = {}
        self.rounds: dict[str, list[list[str]]] = {}  # per scenario: the targets' order in each round
        self.notes: list[str] = []
        self.profile: dict[str, Any] | None = None

    def targets(self, direction: Direction) -> list[Target]:
        out = [Target("direct", "direct"), Target("passthrough", "passthrough")]
        if direction is FORWARD:
            out.append(Target("floor", "floor"))
        out.append(Target("shim-1w", "shim"))
        if self.baseline is not None and direction is FORWARD:
            rev, root = self.baseline
            out.append(Target(rev, "shim", root=root))
        if not self.args.no_two_workers:
            out.append(Target("shim-2w", "shim", workers=2))
        if self.args.litellm and direction is FORWARD:
            out.append(Target("litellm", "litellm"))
        if self.args.targets:
            wanted = set(self.args.targets.split(","))
            out = [t for t in out if t.name in wanted]
        return out

    def server_cpus(self, target: Target) -> str:
        cpus: str = self.args.all_cpus if target.workers > 1 else self.args.server_cpus
        return cpus

    @contextmanager
    def serving(
        self, target: Target, direction: Direction, tokens: int, delay: float
    ) -> Iterator[tuple[Proc, Proc, str]]:
        """The upstream and the target, started fresh; yields (server, upstream, base URL)."""
        direct = target.kind == "direct"
        upstream = start_upstream(self.args.server_cpus if direct else self.args.load_cpus, tokens, delay)
        server = upstream
        try:
            if not direct:
                path, body, _ = direction.call(target, stream=False)
                url = f"http://127.0.0.1:{upstream.port}/v1"
                server = start_target(
                    target,
                    url,
                    direction.upstream_kind,
                    self.server_cpus(target),
                    (path, body.encode()),
                    self.data_dir,
                )
            yield server, upstream, f"http://127.0.0.1:{server.port}"
        finally:
            if server is not upstream:
                server.stop()
            upstream.stop()

    @contextmanager
    def _all_serving(
        self, targets: list[Target], direction: Direction, tokens: int, delay: float
    ) -> Iterator[dict[str, tuple[Proc, Proc, str]]]:
        """Every target of a scenario started at once (each with its own upstream), so their runs
        can take turns; stopped together at the end."""
        with ExitStack() as stack:
            yield {t.name: stack.enter_context(self.serving(t, direction, tokens, delay)) for t in targets}

    def _interleaved(self, label: str, measures: dict[str, Callable[[], dict[str, Any]]]) -> None:
        """Run ``i`` of every target, then run ``i + 1`` of every target, ...: this VM's speed
        drifts over minutes (bench/README.md), so a ratio between two targets is read off runs
        taken seconds apart, not one target's three runs against the other's three later."""
        order = rounds(list(measures), self.plan.runs)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in measures}
        for i, names in enumerate(order):
            for name in names:
                result = measures[name]()
                runs[name].append(result)
                print(f"  {label} round {i + 1} {name}: {report.brief(result)}", flush=True)
        self.rounds[label] = order
        for name, done in runs.items():  # the targets' order, whatever the rounds' was
            self.results.setdefault(label, {})[name] = {"median": _median(done), "runs": done}

    def json_scenarios(self, direction: Direction, prefix: str) -> None:
        """Scenarios 1 (one client, latency) and 2 (64 clients, throughput) on 50-token JSON answers."""
        load = self.args.load_cpus
        targets = self.targets(direction)
        with self._all_serving(targets, direction, 50, 0.0) as live:
            calls: dict[str, tuple[str, str, Proc, Proc]] = {}
            for target in targets:
                server, upstream, base = live[target.name]
                path, body, _ = direction.call(target, stream=False)
                calls[target.name] = (base + path, body, server, upstream)
                run_wrk(base + path, body, 8, self.plan.warmup_s, load, server, upstream)
            for label, clients, seconds in (
                (f"{prefix}1", 1, self.plan.latency_s),
                (f"{prefix}2", 64, self.plan.throughput_s),
            ):
                self._interleaved(
                    label,
                    {
                        name: partial(run_wrk, url, body, clients, seconds, load, server, upstream)
                        for name, (url, body, server, upstream) in calls.items()
                    },
                )
            if self.args.profile and "shim-1w" in calls and direction is FORWARD:
                from bench.pyspy_profile import profile_under

                url, body, server, upstream = calls["shim-1w"]
                self.profile = profile_under(
                    server,
                    partial(run_wrk, url, body, 64, self.plan.throughput_s, load, server, upstream),
                    self.plan.throughput_s,
                )

    def stream_scenario(self, direction: Direction, label: str) -> None:
        """Scenario 3: 200-chunk answers at full upstream speed, 16 clients."""
        targets = self.targets(direction)
        with self._all_serving(targets, direction, 200, 0.0) as live:
            load = self.args.load_cpus
            measures: dict[str, Callable[[], dict[str, Any]]] = {}
            for target in targets:
                server, upstream, base = live[target.name]
                path, body, api = direction.call(target, stream=True)
                run_streams(base + path, body, api, 4, load, server, upstream, duration=self.plan.warmup_s)
                measures[target.name] = partial(
                    run_streams,
                    base + path,
                    body,
                    api,
                    16,
                    load,
                    server,
                    upstream,
                    duration=self.plan.stream_s,
                )
            self._interleaved(label, measures)

    def slow_scenario(self) -> None:
        """Scenario 4: many concurrent slow streams (one chunk per 100 ms): memory per open stream."""
        load, n = self.args.load_cpus, self.plan.slow_streams
        # the fake upstream's memory says nothing about a proxy
        targets = [t for t in self.targets(FORWARD) if t.kind != "direct"]
        with self._all_serving(targets, FORWARD, self.plan.slow_tokens, 0.1) as live:
            measures: dict[str, Callable[[], dict[str, Any]]] = {}
            for target in targets:
                server, upstream, base = live[target.name]
                path, body, api = FORWARD.call(target, stream=True)
                run_streams(base + path, body, api, 4, load, server, upstream, streams=1)
                measures[target.name] = partial(
                    run_streams, base + path, body, api, n, load, server, upstream, streams=1
                )
            self._interleaved("s4", measures)

    def translator(self) -> None:
        """``bench/translate.py`` (CPU time, pinned to the server core) on this checkout and the
        baseline's code; the script is this checkout's either way."""
        roots = [("shim", ROOT)] + ([self.baseline] if self.baseline is not None else [])
        runs = "7" if self.args.quick else "21"
        for name, root in roots:
            cmd = [
                "taskset",
                "-c",
                self.args.server_cpus,
                sys.executable,
                str(ROOT / "bench" / "translate.py"),
            ]
            env = {**os.environ, "PYTHONPATH": str(root)}
            out = subprocess.run(
                [*cmd, "--runs", runs], cwd=root, env=env, capture_output=True, text=True, check=True
            ).stdout
            rates = {
                line.split()[0]: float(line.split(": ", 1)[1].split()[0].replace(",", ""))
                for line in out.splitlines()
                if "chunks per CPU second" in line
            }
            self.results.setdefault("translate", {})[name] = {"median": rates, "runs": [rates]}
            print(f"  translate {name}: {rates}", flush=True)

    def hosted_tool(self) -> None:
        """Issue 18's hosted-tool target (``bench/hosted_tool.py``): this checkout, one worker, a
        real MCP server; the baseline predates hosted tools."""
        from bench import hosted_tool

        self.results["hosted"] = {
            "shim-1w": hosted_tool.run(
                seconds=1.0 if self.args.quick else 3.0,
                repeats=self.plan.runs,
                warmup=self.plan.warmup_s,
                server_cpus=self.args.server_cpus,
                load_cpus=self.args.load_cpus,
                say=lambda line: print(line, flush=True),
            )
        }

    def reverse_available(self) -> bool:
        """Scenario 5 needs ``POST /v1/chat/completions`` in the shim; a 404 skips it."""
        target = Target("shim-1w", "shim")
        try:
            with self.serving(target, REVERSE, 5, 0.0) as (_server, _, base):
                path, body, _ = REVERSE.call(target, stream=False)
                import urllib.error
                import urllib.request

                req = urllib.request.Request(base + path, body.encode(), {"content-type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        return bool(resp.status == 200)
                except urllib.error.HTTPError as exc:
                    self.notes.append(f"scenario 5 skipped: POST /v1/chat/completions answered {exc.code}")
                    return False
        except RuntimeError as exc:
            self.notes.append(f"scenario 5 skipped: the shim would not start for a responses upstream: {exc}")
            return False

    def run(self) -> int:
        scenarios = set(self.args.scenarios.split(","))
        started = time.time()
        env = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            "mode": "quick" if self.args.quick else "full",
            "runs": self.plan.runs,
            "plan": self.plan.__dict__,
            "cpus": os.cpu_count(),
            "server_cpus": self.args.server_cpus,
            "load_cpus": self.args.load_cpus,
            "python": platform.python_version(),
            "loadavg_before": os.getloadavg(),
            "commit": _git_commit(),
            "baseline": self.baseline[0] if self.baseline else None,
        }
        print(
            f"bench: {env['mode']} run, {self.plan.runs} run(s) per figure, load average {env['loadavg_before']}"
        )
        if "1" in scenarios or "2" in scenarios:
            print("scenarios 1-2: JSON, 50 tokens", flush=True)
            self.json_scenarios(FORWARD, "s")
        if "3" in scenarios:
            print("scenario 3: streams, 200 chunks, 16 clients", flush=True)
            self.stream_scenario(FORWARD, "s3")
        if "4" in scenarios:
            print(f"scenario 4: {self.plan.slow_streams} slow streams", flush=True)
            self.slow_scenario()
        if "t" in scenarios:
            print("translator micro-benchmark (CPU time)", flush=True)
            self.translator()
        if "h" in scenarios:
            print("hosted tool loop: one MCP call per response (CPU time)", flush=True)
            self.hosted_tool()
        if "5" in scenarios:
            if self.reverse_available():
                print("scenario 5: Chat Completions over a Responses upstream (1-3 again)", flush=True)
                self.json_scenarios(REVERSE, "s5.")
                self.stream_scenario(REVERSE, "s5.3")
            else:
                print(f"bench: {self.notes[-1]}", flush=True)
        env["loadavg_after"] = os.getloadavg()
        env["elapsed_s"] = round(time.time() - started, 1)
        if self.args.litellm:
            from bench.litellm_proxy import litellm_version

            env["litellm"] = litellm_version()
        md, data = report.render(env, self.results, self.notes, self.profile, self.rounds)
        out_dir = Path(self.args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = time.strftime("%Y-%m-%d-%H%M", time.gmtime(started)) + ("-quick" if self.args.quick else "")
        (out_dir / f"{stem}.md").write_text(md)
        (out_dir / f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(md)
        print(f"bench: wrote {out_dir / stem}.md and .json")
        return 0


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short durations and one run (development)")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, quick 1)")
    parser.add_argument(
        "--scenarios",
        default="1,2,3,4,t,h,5",
        help="comma-separated subset of 1,2,3,4,t,h,5 (t: translator, h: hosted tool loop)",
    )
    parser.add_argument(
        "--baseline",
        default="deb5485",
        help="commit measured back to back with this checkout (issue 18's ratios); '' for none",
    )
    parser.add_argument("--litellm", action="store_true", help="also benchmark the LiteLLM proxy")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of shim-1w under scenario 2")
    parser.add_argument(
        "--targets",
        help="comma-separated subset of direct,passthrough,floor,shim-1w,shim-2w,litellm and the baseline",
    )
    parser.add_argument("--slow-streams", type=int, help="streams of scenario 4 (default 1000, quick 200)")
    parser.add_argument("--no-two-workers", action="store_true", help="skip the two-worker shim")
    parser.add_argument("--server-cpus", default="0", help="cores of the server under test")
    parser.add_argument(
        "--load-cpus", default=str(min(1, cpus - 1)), help="cores of the load generator and upstream"
    )
    parser.add_argument("--all-cpus", default=f"0-{cpus - 1}", help="cores of a multi-worker server")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results")), help="results directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.litellm:
        from bench.litellm_proxy import ensure_litellm

        ensure_litellm()
    harness = Harness(args)
    try:
        return harness.run()
    finally:
        shutil.rmtree(harness.data_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

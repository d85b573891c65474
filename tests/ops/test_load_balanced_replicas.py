"""Two ``shim serve`` replicas behind a real HAProxy (round robin), one real ``redis-server`` as
their store, over the fault upstream (tests/support/fault_upstream.py, a subprocess): the store's
promise that replicas share state, proven end to end, with one replica killed (SIGKILL) midway.

- 200 ``previous_response_id`` chains of 3 turns, 10 at a time, whose turns alternate replicas
  (``x-prefer-replica``, honoured by HAProxy while that replica is up; see
  tests/support/load_balancer.py). Replica ``a`` is killed once a third of the turns are answered;
  a turn cut by the kill (HAProxy's 502/503, or a dropped connection) is sent again, as a client
  would, from the last response it was told about.
- Background responses: started on one replica, polled and cancelled through the other before the
  kill; ``a``'s still running at the kill (the upstream never answers them) must end as ``failed``
  (``background_worker_lost``) within the lease once ``a`` is gone.

Figures printed (``-s``): stored responses a client was told about and then lost (must be 0),
chains that continued on the survivor, turns sent again, ``a``'s background jobs and how long
after the kill each one ended.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.store.conftest import redis_url  # noqa: F401 (the session's redis-server)
from tests.support.load_balancer import HAPROXY_HINT, haproxy_binary, start_haproxy
from tests.support.processes import ROOT, Served, free_port, serve_script, shim_env, spawn, stop, wait_http
from tests.support.real_components import unavailable

SECRET = "load-balanced-replicas-secret"
LEASE = 2.0  # SHIM_BACKGROUND_LEASE of both replicas
CHAINS, TURNS, CONCURRENCY = 200, 3, 10
KILL_AFTER = CHAINS * TURNS // 3  # answered turns before replica a is killed
VICTIM, SURVIVOR = "a", "b"
ORPHANS = 8  # background jobs running on the victim at the kill
CANCELLED = 4  # background jobs on the survivor, cancelled through the victim before the kill
POLLED = 4  # background jobs that complete, polled through the other replica


@dataclass
class Cluster:
    lb: str  # HAProxy's .../v1
    replicas: dict[str, Served]


@dataclass
class Answer:
    response_id: str
    replica: str
    after_kill: bool


@dataclass
class Figures:
    answered: list[Answer] = field(default_factory=list)  # every response a client was told about
    lost: list[str] = field(default_factory=list)
    resent: int = 0
    killed_at: float | None = None
    chains: dict[int, list[Answer]] = field(default_factory=dict)


def _start_replicas(workdir: Path, upstream: str, store: str) -> dict[str, Served]:
    """Both replicas at once (each takes seconds to import), then wait for both."""
    started: dict[str, tuple[Any, int, Path]] = {}
    for name in (VICTIM, SURVIVOR):
        port = free_port()
        home = workdir / name
        home.mkdir()
        argv = [sys.executable, "-m", "shim", "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--upstream", upstream, "--store", store]
        env = shim_env(
            SHIM_DATA_DIR=str(home / "data"),
            SHIM_SECRET=SECRET,  # replicas must share it (store scopes derive from it)
            SHIM_BACKGROUND_LEASE=str(LEASE),
            SHIM_LOG_LEVEL="warning",
            SHIM_ACCESS_LOG="0",
        )
        log = home / "shim.log"
        started[name] = (spawn(argv, log, env=env, cwd=ROOT), port, log)
    replicas = {}
    for name, (proc, port, log) in started.items():
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, f"replica {name}", log, timeout=60)
        replicas[name] = Served(f"http://127.0.0.1:{port}/v1", proc, log)
    return replicas


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str) -> Iterator[Cluster]:  # noqa: F811 (the fixture)
    if haproxy_binary() is None:
        unavailable("haproxy", "no haproxy on PATH or in /usr/sbin", HAPROXY_HINT)
    script = ROOT / "tests" / "support" / "fault_upstream.py"
    upstream = serve_script(script, tmp_path / "upstream.log", what="the fault upstream", timeout=60)
    replicas: dict[str, Served] = {}
    haproxy: Served | None = None
    try:
        replicas = _start_replicas(
            tmp_path, upstream.base_url, f"{redis_url}?prefix=lb{uuid.uuid4().hex[:8]}:"
        )
        ports = {name: urlparse(served.base_url).port or 0 for name, served in replicas.items()}
        haproxy = start_haproxy(tmp_path, ports)
        yield Cluster(haproxy.base_url, replicas)
    finally:
        for served in [*([haproxy] if haproxy else []), *replicas.values(), upstream]:
            stop(served.proc, timeout=10)


# --------------------------------------------------------------------------- the client side


async def send(
    http: httpx.AsyncClient, method: str, path: str, figures: Figures, prefer: str | None = None, **kw: Any
) -> httpx.Response:
    """One request through HAProxy; sent again while the answer is the balancer's own failure
    (a replica died under it), as a client with retries would."""
    headers = {"x-prefer-replica": prefer} if prefer else {}
    for _ in range(50):
        try:
            response = await http.request(method, path, headers=headers, **kw)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code not in (502, 503, 504):
            return response
        figures.resent += 1
        await asyncio.sleep(0.05)
    pytest.fail(f"{method} {path}: no replica answered after 50 tries")


def _told(figures: Figures, response: httpx.Response) -> Answer:
    assert response.status_code == 200, response.text
    answer = Answer(response.json()["id"], response.headers["x-served-by"], figures.killed_at is not None)
    figures.answered.append(answer)
    return answer


async def run_chain(http: httpx.AsyncClient, n: int, figures: Figures, kill: Any) -> None:
    previous: str | None = None
    chain = figures.chains.setdefault(n, [])
    for t in range(TURNS):
        body: dict[str, Any] = {"model": "ok", "input": f"chain {n} turn {t}"}
        if previous is not None:
            body["previous_response_id"] = previous
        prefer = (VICTIM, SURVIVOR)[(n + t) % 2]  # consecutive turns on alternate replicas
        response = await send(http, "POST", "/responses", figures, prefer, json=body)
        if response.status_code == 404:  # the response this turn continues from is gone
            figures.lost.append(previous or "")
            return
        chain.append(_told(figures, response))
        previous = chain[-1].response_id
        if len(figures.answered) >= KILL_AFTER and figures.killed_at is None:
            kill()


async def start_background(http: httpx.AsyncClient, figures: Figures, model: str, on: str) -> str:
    body = {"model": model, "input": "background work", "background": True}
    response = await send(http, "POST", "/responses", figures, on, json=body)
    answer = _told(figures, response)
    assert answer.replica == on and response.json()["status"] == "queued"
    return answer.response_id


async def status_of(
    http: httpx.AsyncClient, response_id: str, figures: Figures, via: str | None
) -> dict[str, Any]:
    response = await send(http, "GET", f"/responses/{response_id}", figures, via)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    data["served_by"] = response.headers["x-served-by"]
    return data


async def wait_status(
    http: httpx.AsyncClient,
    response_id: str,
    figures: Figures,
    via: str | None,
    until: set[str],
    within: float,
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            data = await status_of(http, response_id, figures, via)
            if data["status"] in until:
                return data
            await asyncio.sleep(0.05)


FINAL = {"completed", "incomplete", "failed", "cancelled"}


async def scenario(cluster: Cluster) -> tuple[Figures, dict[str, float], dict[str, dict[str, Any]]]:
    figures = Figures()
    limits = httpx.Limits(max_connections=CONCURRENCY + 4)
    async with httpx.AsyncClient(base_url=cluster.lb, timeout=30, limits=limits) as http:
        # Background jobs, polled and cancelled through the other replica.
        orphans = [await start_background(http, figures, "hang", VICTIM) for _ in range(ORPHANS)]
        doomed = [await start_background(http, figures, "hang", SURVIVOR) for _ in range(CANCELLED)]
        polled = [
            await start_background(http, figures, "ok", (VICTIM, SURVIVOR)[i % 2]) for i in range(POLLED)
        ]
        for response_id in orphans:
            running = await wait_status(http, response_id, figures, SURVIVOR, {"in_progress"}, 10)
            assert running["served_by"] == SURVIVOR
        for response_id in doomed:
            await wait_status(http, response_id, figures, VICTIM, {"in_progress"}, 10)
            cancel = await send(http, "POST", f"/responses/{response_id}/cancel", figures, VICTIM)
            assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled", cancel.text
            assert cancel.headers["x-served-by"] == VICTIM
            assert (await status_of(http, response_id, figures, SURVIVOR))["status"] == "cancelled"
        for i, response_id in enumerate(polled):
            other = (SURVIVOR, VICTIM)[i % 2]
            done = await wait_status(http, response_id, figures, other, FINAL, 10)
            assert done["status"] == "completed" and done["served_by"] == other

        # The chains; replica a dies a third of the way through.
        ended: dict[str, float] = {}
        orphan_states: dict[str, dict[str, Any]] = {}

        def kill() -> None:
            cluster.replicas[VICTIM].proc.send_signal(signal.SIGKILL)
            figures.killed_at = time.monotonic()

        async def watch_orphans() -> None:
            while figures.killed_at is None:
                await asyncio.sleep(0.02)
            pending = set(orphans)
            while pending:
                for response_id in sorted(pending):
                    data = await status_of(http, response_id, figures, None)
                    if data["status"] in FINAL:
                        ended[response_id] = time.monotonic() - figures.killed_at
                        orphan_states[response_id] = data
                        pending.discard(response_id)
                await asyncio.sleep(0.1)

        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(CHAINS):
            queue.put_nowait(n)

        async def worker() -> None:
            while not queue.empty():
                await run_chain(http, queue.get_nowait(), figures, kill)

        watcher = asyncio.create_task(watch_orphans())
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        async with asyncio.timeout(LEASE + 15):
            await watcher

        # Every response a client was told about is still there, through the survivor.
        for answer in figures.answered:
            response = await send(http, "GET", f"/responses/{answer.response_id}", figures)
            if response.status_code != 200:
                figures.lost.append(answer.response_id)
    return figures, ended, orphan_states


def test_two_replicas_behind_haproxy_one_killed(cluster: Cluster) -> None:
    began = time.monotonic()
    figures, ended, orphans = asyncio.run(scenario(cluster))
    took = time.monotonic() - began

    chains = figures.chains
    complete = sum(1 for turns in chains.values() if len(turns) == TURNS)
    # Chains cut by the kill: some turns answered before it, the rest after (on the survivor);
    # of those, the ones whose last answer before the kill came from the killed replica.
    straddling = [
        turns for turns in chains.values() if any(a.after_kill for a in turns) and not turns[0].after_kill
    ]
    continued = len(straddling)
    from_victim = sum(
        1 for turns in straddling if [a for a in turns if not a.after_kill][-1].replica == VICTIM
    )
    assert all(a.replica == SURVIVOR for turns in straddling for a in turns if a.after_kill)
    alternated = sum(
        1
        for turns in chains.values()
        if all(x.replica != y.replica for x, y in itertools.pairwise(turns) if not y.after_kill)
    )
    times = sorted(ended.values())
    print(
        f"\nload-balanced replicas: {len(figures.answered)} responses told to clients, "
        f"{len(figures.lost)} lost; {complete}/{CHAINS} chains complete, {continued} continued on "
        f"the survivor after the kill ({from_victim} of them from a turn the killed replica answered), "
        f"{alternated} alternated replicas turn by turn before it; "
        f"{figures.resent} requests sent again (the balancer's 502/503 or a dropped connection); "
        f"{len(ended)}/{ORPHANS} background jobs of the killed replica ended "
        f"({sorted({o['status'] + '/' + str((o.get('error') or {}).get('code')) for o in orphans.values()})}) "
        f"{times[0] if times else float('nan'):.2f}-{times[-1] if times else float('nan'):.2f} s "
        f"(median {statistics.median(times) if times else float('nan'):.2f} s) after the kill, lease {LEASE} s; "
        f"whole scenario {took:.1f} s"
    )
    assert figures.killed_at is not None, "replica a was killed"
    assert figures.lost == [], f"responses told to a client and then lost: {figures.lost}"
    assert complete == CHAINS
    assert alternated == CHAINS, "every chain alternated replicas while both were up"
    assert continued > 0, "chains in flight at the kill went on on the survivor"
    assert len(ended) == ORPHANS
    for state in orphans.values():
        assert state["status"] == "failed" and state["error"]["code"] == "background_worker_lost", state
    assert max(times) < LEASE + 3.0, f"orphans ended {times} s after the kill; the lease is {LEASE} s"
    assert took < 60

"""Each upstream's breaker as ``/metrics`` and ``/readyz`` show it.

Read at scrape time from the process's ``Breakers`` (``breaker.py``), so a breaker whose
cool-down ended shows ``half_open`` before any request asked, and every configured upstream is
listed (``closed``) before its first request. Per process: with ``--workers N`` each worker has
its own breakers and answers for them (docs/upstreams.md).

- ``shim_upstream_state{upstream,state}``: 1 for the upstream's current state, 0 for the others;
- ``shim_upstream_breaker_transitions_total{upstream,to}``: entries into ``open``,
  ``half_open``, ``closed``;
- ``shim_upstream_failovers_total{upstream,reason}``: requests that left this upstream for the
  next one, by what happened (``unreachable``, ``status_503``, ``timeout``…).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shim.upstream.breaker import STATES, Breakers, State, upstream_label
from shim.upstream.routing import Router

__all__ = ["BreakerCollector", "upstream_states"]


def _urls(router: Router) -> list[str]:
    urls = (candidate.upstream for route in router.routes for candidate in route.candidates())
    return list(dict.fromkeys(urls))


def upstream_states(router: Router, breakers: Breakers, now: float) -> dict[str, State]:
    """Every configured upstream (label) → its breaker's state at ``now``."""
    states: dict[str, State] = {}
    for url in _urls(router):
        breaker = breakers.get(url)
        states[upstream_label(url)] = breaker.state_at(now) if breaker is not None else "closed"
    return states


class BreakerCollector(Collector):
    def __init__(
        self, router: Router, breakers: Breakers, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.router = router
        self.breakers = breakers
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "shim_upstream_state",
            "Circuit breaker state per upstream (1 = current)",
            labels=("upstream", "state"),
        )
        for label, current in upstream_states(self.router, self.breakers, self.clock()).items():
            for name in STATES:
                state.add_metric((label, name), 1.0 if name == current else 0.0)
        yield state
        transitions = CounterMetricFamily(
            "shim_upstream_breaker_transitions", "Circuit breaker state changes", labels=("upstream", "to")
        )
        failovers = CounterMetricFamily(
            "shim_upstream_failovers",
            "Requests that moved on to the next upstream, by the upstream left and why",
            labels=("upstream", "reason"),
        )
        for url in _urls(self.router):
            breaker = self.breakers.get(url)
            for name in STATES:
                count = breaker.transitions[name] if breaker is not None else 0
                transitions.add_metric((upstream_label(url), name), float(count))
        for (url, reason), count in sorted(self.breakers.failovers.items()):
            failovers.add_metric((upstream_label(url), reason), float(count))
        yield transitions
        yield failovers

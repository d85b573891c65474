"""A circuit breaker per upstream: skip an upstream that keeps failing, try it again later.

Sans-IO: every method takes ``now`` (monotonic seconds); the failover layer
(``shim.upstream.failover``) asks and reports, and nothing here sleeps, reads a clock or sends.

    closed ──``failures`` failures in a row──▶ open ──``cooldown`` elapsed, a request asks──▶ half_open
      ▲                                          ▲                                              │
      └──────────── the trial succeeded ─────────┼──────────── the trial failed ◀──────────────┘
                                                 └── (cool-down starts again)

- **closed**: every request may go; a success resets the count of failures in a row.
- **open**: requests skip this upstream until ``cooldown`` seconds have passed since it opened.
- **half_open**: exactly one request (the trial) goes; the others keep skipping it. Its success
  closes the breaker, its failure opens it again. A trial that ends with no verdict (the client
  went away, the request could not be built) frees the slot for the next request.

A success reported while open (a request let through because every upstream of its route was
open, see ``failover``) closes it too: the upstream answered. State lives in this process only:
``--workers N`` and replicas each keep their own (docs/upstreams.md).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["STATES", "Breaker", "Breakers", "State", "upstream_label"]

State = Literal["closed", "open", "half_open"]
STATES: tuple[State, ...] = ("closed", "open", "half_open")


class Breaker:
    def __init__(self, failures: int, cooldown: float) -> None:
        if failures < 1 or cooldown <= 0:
            raise ValueError("a breaker needs failures >= 1 and cooldown > 0")
        self.threshold = failures
        self.cooldown = cooldown
        self.state: State = "closed"
        self.failures = 0  # in a row, while closed
        self.opened_at = 0.0
        self.trial = False  # half_open: the one request let through is still out
        self.transitions: Counter[State] = Counter()  # entries into each state, for /metrics

    def state_at(self, now: float) -> State:
        """What a request arriving at ``now`` would find: an open breaker whose cool-down is over
        is ready for its trial (half-open), even before a request asked."""
        if self.state == "open" and now - self.opened_at >= self.cooldown:
            return "half_open"
        return self.state

    def allow(self, now: float) -> bool:
        """May a request go to this upstream now? A yes from an open or half-open breaker makes
        that request the trial: report its outcome (``success``/``failure``) or ``abandon`` it."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if now - self.opened_at < self.cooldown:
                return False
            self._enter("half_open")
        if self.trial:
            return False
        self.trial = True
        return True

    def success(self, now: float) -> None:
        self.failures = 0
        self.trial = False
        if self.state != "closed":
            self._enter("closed")

    def failure(self, now: float) -> None:
        self.trial = False
        if self.state == "closed":
            self.failures += 1
            if self.failures < self.threshold:
                return
        self.failures = 0
        self.opened_at = now
        if self.state != "open":
            self._enter("open")

    def abandon(self) -> None:
        """A request this breaker let through ended with no verdict."""
        self.trial = False

    def _enter(self, state: State) -> None:
        self.state = state
        self.transitions[state] += 1


class Breakers:
    """One ``Breaker`` per upstream URL, made on first use; failovers counted per upstream left
    and why (both read by ``/metrics``)."""

    def __init__(self, failures: int = 5, cooldown: float = 30.0) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._breakers: dict[str, Breaker] = {}
        self.failovers: Counter[tuple[str, str]] = Counter()  # (upstream left, reason)

    def __getitem__(self, url: str) -> Breaker:
        breaker = self._breakers.get(url)
        if breaker is None:
            breaker = self._breakers[url] = Breaker(self.failures, self.cooldown)
        return breaker

    def get(self, url: str) -> Breaker | None:
        return self._breakers.get(url)

    def note_failover(self, url: str, reason: str) -> None:
        self.failovers[(url, reason)] += 1


def upstream_label(url: str) -> str:
    """An upstream URL as shown in metrics and ``/readyz``: no credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"

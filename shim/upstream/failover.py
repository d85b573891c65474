"""Fallback upstreams: which of a route's upstreams a request goes to, and when it moves on.

A route lists its upstreams in order (``settings.Route.fallbacks``). ``send`` is the one seam the
turns use: it tries them in that order until one answers with a status below 400, and returns the
open answer *and the upstream that gave it* (the turn reads the answer with that upstream's
dialect and redacts that upstream's key). The body is built per upstream (``body(resolved)``),
because dialect and model may differ between them.

When a request moves on (``classify``), decided before the upstream's answer head is passed on —
once ``send`` returned, the answer is the client's and nothing is re-sent:

| what happened                                         | moves on                      | breaker  |
| ----------------------------------------------------- | ----------------------------- | -------- |
| never left: connect refused, DNS, TLS, connect or pool timeout, a key that cannot be sent | always | failure (not for a bad key) |
| 429, 502, 503 (the upstream says it did not do it)    | always                        | failure  |
| 500, 504, other 5xx; no answer head in time; reset after sending; an answer that is no answer | only with ``failover_resend`` | failure |
| another 4xx (the request itself is refused)           | never: passed on to the client | success |

The plan (``Plan``, sans-IO) skips an upstream whose breaker is open (``breaker.py``); a
half-open one gets one trial request. When every upstream of a route is open, the request goes to
them all in order anyway (as a single-upstream route always does): a breaker spares the route's
other upstreams the wait, it never refuses service by itself. Only the last upstream a request
can try keeps ``server.retries`` (backoff on the same upstream); before it, the next upstream is
the retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import httpx
import msgspec

from shim.core.diagnostics import Diagnostics
from shim.errors import (
    RateLimited,
    ShimError,
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamStatusError,
)
from shim.upstream.breaker import Breaker, Breakers
from shim.upstream.client import UpstreamClient
from shim.upstream.routing import Resolved

__all__ = ["Plan", "Verdict", "classify", "reports_once", "send", "with_model"]

log = logging.getLogger("shim")

_json = msgspec.json.Decoder(dict[str, object])
_encoder = msgspec.json.Encoder()
_REFUSED = frozenset({429, 502, 503})  # the upstream says the request was not worked on


class Verdict(msgspec.Struct, frozen=True):
    move_on: Literal["always", "if_resend", "never"]
    breaker: Literal["failure", "success", "none"]
    reason: str  # the metrics label of the failover


def classify(error: ShimError) -> Verdict:
    """What an error raised before the answer began means for failover and for the breaker."""
    if isinstance(error, RateLimited):
        return Verdict("always", "failure", "status_429")
    if not isinstance(error, UpstreamError):  # not the upstream's doing (a body we could not build)
        return Verdict("never", "none", "")
    if isinstance(error, UpstreamStatusError):  # a 4xx: the upstream is well, the request is not
        return Verdict("never", "success", "")
    if isinstance(error, UpstreamMisconfigured):  # our key or header for it; nothing was sent
        return Verdict("always", "none", "misconfigured")
    if not error.sent:
        return Verdict("always", "failure", (error.code or "upstream_unreachable").removeprefix("upstream_"))
    status = error.upstream_status
    if status is not None:
        return Verdict("always" if status in _REFUSED else "if_resend", "failure", f"status_{status}")
    return Verdict("if_resend", "failure", (error.code or "upstream_error").removeprefix("upstream_"))


class Plan:
    """The order one request tries a route's upstreams in (sans-IO: ``now`` is given).

    ``next`` names the next upstream to try (its breaker asked, so a half-open one's trial is
    taken), or ``None`` when the request is done; report each try with ``failed`` (which says
    whether to go on), ``succeeded`` or ``abandoned``."""

    def __init__(self, urls: Sequence[str], breakers: Breakers, *, resend: bool = False) -> None:
        self.urls = urls
        self.breakers = breakers
        self.resend = resend
        self._next = 0
        self._skipped: list[int] = []
        self._tried = 0
        self._panic: list[int] | None = None  # every upstream was open: try them all in order
        self._stop = False

    def next(self, now: float) -> int | None:
        if self._stop:
            return None
        while self._next < len(self.urls):
            index = self._next
            self._next += 1
            if self.breakers[self.urls[index]].allow(now):
                self._tried += 1
                return index
            self._skipped.append(index)
        if self._tried == 0 and self._panic is None:
            self._panic = list(self._skipped)
        if self._panic:
            self._tried += 1
            return self._panic.pop(0)
        return None

    def is_last(self, index: int, now: float) -> bool:
        """No upstream after ``index`` would be tried (so ``index`` keeps the same-upstream retries)."""
        if self._panic is not None:
            return not self._panic
        later = self.urls[index + 1 :]
        return not any(self.breakers[url].state_at(now) != "open" for url in later)

    def failed(self, index: int, error: ShimError, now: float) -> bool:
        """Report a failed try; True when the request may go on to the next upstream."""
        verdict = classify(error)
        _report(self.breakers[self.urls[index]], verdict, now)
        go_on = verdict.move_on == "always" or (verdict.move_on == "if_resend" and self.resend)
        if go_on:
            self.breakers.note_failover(self.urls[index], verdict.reason)
        else:
            self._stop = True
        return go_on

    def succeeded(self, index: int, now: float) -> None:
        self.breakers[self.urls[index]].success(now)

    def abandoned(self, index: int) -> None:
        self.breakers[self.urls[index]].abandon()


@contextmanager
def reports_once(diags: Diagnostics) -> Iterator[None]:
    """Around building a body for one more upstream: keep only the reports the earlier bodies
    did not make already (the same request translated again says the same things)."""
    mark = len(diags.items)
    try:
        yield
    finally:
        diags.items[mark:] = [d for d in diags.items[mark:] if d not in diags.items[:mark]]


def _report(breaker: Breaker, verdict: Verdict, now: float) -> None:
    if verdict.breaker == "failure":
        breaker.failure(now)
    elif verdict.breaker == "success":
        breaker.success(now)
    else:
        breaker.abandon()


def with_model(body: bytes, model: str) -> bytes:
    """A JSON request body naming ``model`` (a fallback may serve the route under another name)."""
    data = _json.decode(body)
    data["model"] = model
    return _encoder.encode(data)


async def send(
    client: UpstreamClient,
    resolved: Resolved,
    path: str,
    body: Callable[[Resolved], bytes],
    *,
    stream: bool,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[httpx.Response, Resolved]:
    """POST to the route's first upstream that answers (status < 400); the open answer and that
    upstream. Raises the last upstream's error when none does (or one may not be left)."""
    if not resolved.fallbacks:  # one upstream: always tried (as when every upstream is open)
        return await _only(client, resolved, path, body, stream=stream, clock=clock), resolved
    candidates = (resolved, *resolved.fallbacks)
    plan = Plan(
        [c.route.upstream for c in candidates], client.breakers, resend=resolved.route.failover_resend
    )
    error: ShimError | None = None
    while (index := plan.next(clock())) is not None:
        candidate = candidates[index]
        try:
            data = body(candidate)
            retries = client.retries if plan.is_last(index, clock()) else 0
            response = await client.send(candidate, path, data, stream=stream, retries=retries)
        except ShimError as exc:
            if not plan.failed(index, exc, clock()):
                raise
            error = exc
            log.info("failover: %s failed before answering (%s)", candidate.route.upstream, exc.code)
            continue
        except BaseException:  # cancelled (the client went away): no verdict on the upstream
            plan.abandoned(index)
            raise
        plan.succeeded(index, clock())
        return response, candidate
    assert error is not None, "a plan tries at least one upstream"
    raise error


async def _only(
    client: UpstreamClient,
    resolved: Resolved,
    path: str,
    body: Callable[[Resolved], bytes],
    *,
    stream: bool,
    clock: Callable[[], float],
) -> httpx.Response:
    """``send`` for a route with one upstream: what a one-entry ``Plan`` does, minus the plan
    (this is every request's path on such a route)."""
    breaker = client.breakers[resolved.route.upstream]
    breaker.allow(clock())  # the trial when half-open; tried either way
    try:
        response = await client.send(resolved, path, body(resolved), stream=stream)
    except ShimError as exc:
        _report(breaker, classify(exc), clock())
        raise
    except BaseException:
        breaker.abandon()
        raise
    breaker.success(clock())
    return response

"""Failover decisions without IO (``shim/upstream/failover.py``): what each error means, and the
order a request tries a route's upstreams in given their breakers."""

from __future__ import annotations

import pytest

from shim.errors import (
    InvalidRequest,
    RateLimited,
    ShimError,
    UpstreamError,
    UpstreamInvalidResponse,
    UpstreamMisconfigured,
    UpstreamReset,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from shim.upstream.breaker import Breakers
from shim.upstream.errors import upstream_error
from shim.upstream.failover import Plan, classify


def _unsent(error: UpstreamError) -> UpstreamError:
    error.sent = False
    return error


# id, error, moves on, breaker verdict
CASES: list[tuple[str, ShimError, str, str]] = [
    ("connect-refused", _unsent(UpstreamUnreachable("x")), "always", "failure"),
    ("connect-timeout", _unsent(UpstreamTimeout("x")), "always", "failure"),
    ("bad-key-nothing-sent", UpstreamMisconfigured("x"), "always", "none"),
    ("429", upstream_error(429, b"{}"), "always", "failure"),
    ("502", upstream_error(502, b"{}"), "always", "failure"),
    ("503", upstream_error(503, b"{}"), "always", "failure"),
    ("500", upstream_error(500, b"{}"), "if_resend", "failure"),
    ("504", upstream_error(504, b"{}"), "if_resend", "failure"),
    ("first-byte-timeout", UpstreamTimeout("x"), "if_resend", "failure"),
    ("reset-after-sending", UpstreamReset("x"), "if_resend", "failure"),
    ("invalid-answer", UpstreamInvalidResponse("x"), "if_resend", "failure"),
    ("400", upstream_error(400, b"{}"), "never", "success"),
    ("404", UpstreamStatusError("x", status=404), "never", "success"),
    ("not-the-upstream", InvalidRequest("x"), "never", "none"),
]


@pytest.mark.parametrize(("error", "move_on", "breaker"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_classify(error: ShimError, move_on: str, breaker: str) -> None:
    verdict = classify(error)
    assert (verdict.move_on, verdict.breaker) == (move_on, breaker)


def test_rate_limited_is_a_refusal() -> None:
    assert isinstance(upstream_error(429, b"{}"), RateLimited)


URLS = ["http://a", "http://b", "http://c"]


def _plan(open_: tuple[str, ...] = (), *, resend: bool = False) -> tuple[Plan, Breakers]:
    breakers = Breakers(failures=1, cooldown=10.0)
    for url in open_:
        breakers[url].failure(0)
    return Plan(URLS, breakers, resend=resend), breakers


def test_in_order_until_one_answers() -> None:
    plan, breakers = _plan()
    assert plan.next(1) == 0
    assert plan.failed(0, _unsent(UpstreamUnreachable("x")), 1)
    assert plan.next(1) == 1
    plan.succeeded(1, 1)
    assert breakers["http://a"].state == "open" and breakers["http://b"].state == "closed"
    assert breakers.failovers == {("http://a", "unreachable"): 1}


def test_open_upstreams_are_skipped() -> None:
    plan, _ = _plan(("http://a",))
    assert plan.next(1) == 1
    assert not plan.is_last(1, 1)
    assert plan.failed(1, upstream_error(503, b"{}"), 1)
    assert plan.next(1) == 2 and plan.is_last(2, 1)
    assert plan.failed(2, upstream_error(503, b"{}"), 1)
    assert plan.next(1) is None, "an open upstream is not tried once others were"


def test_every_upstream_open_tries_them_all_in_order() -> None:
    plan, _ = _plan(tuple(URLS))
    assert plan.next(1) == 0 and not plan.is_last(0, 1)
    assert plan.failed(0, upstream_error(503, b"{}"), 1)
    assert plan.next(1) == 1
    assert plan.failed(1, upstream_error(503, b"{}"), 1)
    assert plan.next(1) == 2 and plan.is_last(2, 1)
    assert plan.failed(2, upstream_error(503, b"{}"), 1)
    assert plan.next(1) is None


def test_half_open_gets_one_trial() -> None:
    plan, breakers = _plan(("http://a",))
    assert plan.next(10) == 0, "cool-down over: the trial"
    assert Plan(URLS, breakers).next(10) == 1, "a concurrent request skips the upstream under trial"
    plan.succeeded(0, 10.5)
    assert breakers["http://a"].state == "closed"


@pytest.mark.parametrize(("resend", "goes_on"), [(False, False), (True, True)])
def test_a_request_that_reached_an_upstream_moves_on_only_when_the_route_allows(
    resend: bool, goes_on: bool
) -> None:
    plan, _ = _plan(resend=resend)
    assert plan.next(1) == 0
    assert plan.failed(0, UpstreamReset("x"), 1) is goes_on
    assert (plan.next(1) == 1) is goes_on


def test_a_refused_request_stops_at_once() -> None:
    plan, breakers = _plan()
    assert plan.next(1) == 0
    assert not plan.failed(0, upstream_error(400, b"{}"), 1)
    assert plan.next(1) is None
    assert breakers["http://a"].state == "closed" and not breakers.failovers


def test_an_abandoned_trial_frees_the_slot() -> None:
    plan, breakers = _plan(("http://a",))
    assert plan.next(10) == 0
    plan.abandoned(0)
    assert Plan(URLS, breakers).next(10) == 0

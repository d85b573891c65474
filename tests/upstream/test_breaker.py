"""The circuit breaker's transitions (``shim/upstream/breaker.py``), one row per path through it.

A row is a script of events at given times and the state after each: ``allow`` (the answer
expected), ``ok`` (success), ``fail`` (failure), ``drop`` (a trial abandoned), ``state`` (only
the state at that time). Threshold 3 failures in a row, cool-down 10 s.
"""

from __future__ import annotations

import pytest

from shim.upstream.breaker import Breaker, Breakers, upstream_label

# (event, time, expected answer of ``allow`` or None, state after)
Step = tuple[str, float, bool | None, str]

SCRIPTS: list[tuple[str, list[Step]]] = [
    ("closed-stays-closed-below-threshold", [
        ("fail", 0, None, "closed"), ("fail", 1, None, "closed"), ("allow", 2, True, "closed"),
    ]),
    ("a-success-resets-the-count", [
        ("fail", 0, None, "closed"), ("fail", 1, None, "closed"), ("ok", 2, None, "closed"),
        ("fail", 3, None, "closed"), ("fail", 4, None, "closed"), ("allow", 5, True, "closed"),
    ]),
    ("threshold-opens", [
        ("fail", 0, None, "closed"), ("fail", 1, None, "closed"), ("fail", 2, None, "open"),
        ("allow", 3, False, "open"), ("allow", 11.9, False, "open"),
    ]),
    ("cooldown-over-shows-half-open-before-anyone-asks", [
        ("fail", 0, None, "closed"), ("fail", 0, None, "closed"), ("fail", 0, None, "open"),
        ("state", 9.9, None, "open"), ("state", 10, None, "half_open"),
    ]),
    ("one-trial-at-a-time", [
        ("fail", 0, None, "closed"), ("fail", 0, None, "closed"), ("fail", 0, None, "open"),
        ("allow", 10, True, "half_open"), ("allow", 10.1, False, "half_open"), ("allow", 11, False, "half_open"),
    ]),
    ("trial-success-closes", [
        ("fail", 0, None, "closed"), ("fail", 0, None, "closed"), ("fail", 0, None, "open"),
        ("allow", 10, True, "half_open"), ("ok", 10.5, None, "closed"), ("allow", 10.6, True, "closed"),
        ("fail", 11, None, "closed"),  # the count starts again from zero
    ]),
    ("trial-failure-reopens-for-a-whole-cooldown", [
        ("fail", 0, None, "closed"), ("fail", 0, None, "closed"), ("fail", 0, None, "open"),
        ("allow", 10, True, "half_open"), ("fail", 12, None, "open"),
        ("allow", 21.9, False, "open"), ("allow", 22, True, "half_open"),
    ]),
    ("abandoned-trial-frees-the-slot", [
        ("fail", 0, None, "closed"), ("fail", 0, None, "closed"), ("fail", 0, None, "open"),
        ("allow", 10, True, "half_open"), ("drop", 10.2, None, "half_open"), ("allow", 10.3, True, "half_open"),
    ]),
    ("success-while-open-closes", [  # a request let through because every upstream was open
        ("fail", 0, None, "closed"), ("fail", 0, None, "closed"), ("fail", 0, None, "open"),
        ("ok", 1, None, "closed"),
    ]),
    ("failure-while-open-restarts-the-cooldown", [
        ("fail", 0, None, "closed"), ("fail", 0, None, "closed"), ("fail", 0, None, "open"),
        ("fail", 5, None, "open"), ("allow", 14, False, "open"), ("allow", 15, True, "half_open"),
    ]),
]  # fmt: skip


@pytest.mark.parametrize("script", [pytest.param(s, id=name) for name, s in SCRIPTS])
def test_transitions(script: list[Step]) -> None:
    breaker = Breaker(failures=3, cooldown=10.0)
    for n, (event, now, answer, state) in enumerate(script):
        if event == "allow":
            assert breaker.allow(now) is answer, f"step {n}"
        elif event == "ok":
            breaker.success(now)
        elif event == "fail":
            breaker.failure(now)
        elif event == "drop":
            breaker.abandon()
        assert breaker.state_at(now) == state, f"step {n}: {event} at {now}"


def test_transitions_are_counted() -> None:
    breaker = Breaker(failures=1, cooldown=1.0)
    breaker.failure(0)
    assert breaker.allow(1)
    breaker.success(1)
    assert dict(breaker.transitions) == {"open": 1, "half_open": 1, "closed": 1}


@pytest.mark.parametrize(("failures", "cooldown"), [(0, 1.0), (1, 0.0)])
def test_bad_settings_are_refused(failures: int, cooldown: float) -> None:
    with pytest.raises(ValueError, match="failures >= 1 and cooldown > 0"):
        Breaker(failures, cooldown)


def test_one_breaker_per_url() -> None:
    breakers = Breakers(failures=1, cooldown=5.0)
    breakers["http://a/v1"].failure(0)
    assert breakers["http://a/v1"].state == "open"
    assert breakers["http://b/v1"].state == "closed"
    assert breakers.get("http://c/v1") is None


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("https://user:secret@api.example.com/v1?key=s3cret#x", "https://api.example.com/v1"),
        ("http://[::1]:9/v1", "http://[::1]:9/v1"),
    ],
)
def test_labels_hold_no_credentials(url: str, label: str) -> None:
    assert upstream_label(url) == label

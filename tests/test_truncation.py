"""``conversation/truncation.py``: which items form a droppable turn, and what fitting keeps."""

from __future__ import annotations

import pytest

from shim.conversation.truncation import Truncation, estimate_tokens, turn_spans
from shim.wire import responses as r


def user(text: str = "q") -> r.MessageItemParam:
    return r.MessageItemParam(role="user", content=text)


def system() -> r.MessageItemParam:
    return r.MessageItemParam(role="system", content="rules")


def assistant(text: str = "a") -> r.MessageItemParam:
    return r.MessageItemParam(role="assistant", content=text)


def call(n: int) -> r.FunctionCallItemParam:
    return r.FunctionCallItemParam(call_id=f"c{n}", name="f", arguments="{}")


def output(n: int) -> r.FunctionCallOutputItemParam:
    return r.FunctionCallOutputItemParam(call_id=f"c{n}", output="x")


# items -> the droppable turns ([start, end)); the last turn is never among them
CASES = {
    "one turn: nothing to drop": ([user(), assistant()], []),
    "each user message opens a turn": ([user(), assistant(), user(), assistant(), user()], [(0, 2), (2, 4)]),
    "a system message first is no turn": ([system(), user(), assistant(), user()], [(1, 3)]),
    "an assistant note before any user message is a turn": ([assistant(), user(), user()], [(0, 1), (1, 2)]),
    "a user message between a call and its output is no boundary": (
        [user(), call(1), user(), output(1), assistant(), user(), assistant()],
        [(0, 5)],
    ),
    "no user message: nothing to drop": ([assistant(), call(1), output(1)], []),
    "an agent loop: its older rounds, after every older turn": (
        [
            user(),
            assistant(),
            user(),
            call(1),
            output(1),
            call(2),
            call(3),
            output(3),
            output(2),
            call(4),
            output(4),
        ],
        [(0, 2), (3, 5), (5, 9)],
    ),
    "a round never parts a call from its output": (
        [user(), call(1), output(2), call(2), output(1), call(3), output(3)],
        [(1, 5)],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_turn_spans(name: str) -> None:
    items, spans = CASES[name]
    assert turn_spans(items) == spans


def test_fit_keeps_pinned_items_and_the_last_turn() -> None:
    long = "word " * 300
    items: list[r.ItemParam] = [system(), user(long), assistant(long), system(), user(long), user("now?")]
    truncation = Truncation(items, window=estimate_tokens(items[3:]) + 1)
    kept = truncation.fit()
    assert kept == [items[0], items[3], items[5]]  # both system messages stay where they were
    assert truncation.dropped_turns == 2


def test_shrink_is_bounded() -> None:
    items: list[r.ItemParam] = [m for n in range(10) for m in (user(f"q{n}"), assistant(f"a{n}"))]
    truncation = Truncation(items, retries=2)
    assert truncation.shrink() is not None
    assert truncation.shrink() is not None
    assert truncation.shrink() is None  # retries spent


def test_an_agent_loop_keeps_its_question_and_latest_round() -> None:
    long = "word " * 300
    items: list[r.ItemParam] = [system(), user("do it")]
    for n in range(6):
        items += [call(n), r.FunctionCallOutputItemParam(call_id=f"c{n}", output=long)]
    truncation = Truncation(items, window=estimate_tokens(items[:2] + items[-4:]) + 1)
    assert truncation.fit() == [*items[:2], *items[-4:]]


def test_shrink_stops_at_the_last_turn() -> None:
    truncation = Truncation([user(), assistant(), user()], retries=5)
    assert truncation.shrink() == [r.MessageItemParam(role="user", content="q")]
    assert truncation.shrink() is None

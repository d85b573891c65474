"""The shim's own summary when the model writes none (``translate/compaction.fallback_summary``).

Each case: the window, the fallback settings, the lines expected after the prefix (``None``: no
fallback, so the turn answers 502 ``upstream_empty_summary``).
"""

from __future__ import annotations

import msgspec
import pytest

from shim.translate.compaction import Fallback, compaction_config, fallback_summary
from shim.wire import responses as r

SHIPPED = compaction_config()
SMALL = Fallback(prefix="[extract]", max_chars=200, max_message_chars=60)


def _msg(role: r.Role, content: str | list[r.ContentPart]) -> r.MessageItemParam:
    return r.MessageItemParam(role=role, content=content)


def _call() -> r.FunctionCallItemParam:
    return r.FunctionCallItemParam(call_id="c1", name="f", arguments="{}")


LONG_TURNS = [_msg("user", f"turn {i}: " + "x" * 40) for i in range(8)]

CASES: dict[str, tuple[list[r.ItemParam], Fallback, list[str] | None]] = {
    "one line per message, parts joined, whitespace collapsed": (
        [
            _msg("user", "We launch on\n\nTuesday."),
            _msg("assistant", [r.OutputTextContent(text="Noted:"), r.OutputTextContent(text="Tuesday.")]),
        ],
        SHIPPED.fallback,
        ["user: We launch on Tuesday.", "assistant: Noted: Tuesday."],
    ),
    "calls and empty messages are left out": (
        [_msg("user", "go"), _call(), _msg("assistant", "")],
        SHIPPED.fallback,
        ["user: go"],
    ),
    "a long message is cut with an ellipsis": (
        [_msg("user", "y" * 100)],
        SMALL,
        ["user: " + "y" * 59 + "…"],
    ),
    "past max_chars: the first line, an ellipsis, the latest that fit": (
        list[r.ItemParam](LONG_TURNS),
        SMALL,
        [f"user: turn 0: {'x' * 40}", "…", f"user: turn 6: {'x' * 40}", f"user: turn 7: {'x' * 40}"],
    ),
    "no message text: no fallback": ([_call()], SHIPPED.fallback, None),
    "turned off: no fallback": ([_msg("user", "go")], Fallback(enabled=False), None),
}


@pytest.mark.parametrize(("window", "fallback", "lines"), CASES.values(), ids=CASES.keys())
def test_fallback_summary(window: list[r.ItemParam], fallback: Fallback, lines: list[str] | None) -> None:
    config = msgspec.structs.replace(SHIPPED, fallback=fallback)
    summary = fallback_summary(window, config)
    if lines is None:
        assert summary is None
        return
    assert summary == "\n".join([fallback.prefix, *lines])
    assert len(summary) <= fallback.max_chars


def test_shipped_fallback_is_on_and_marked() -> None:
    assert SHIPPED.fallback.enabled
    assert "shim" in SHIPPED.fallback.prefix  # the model (and a reader) can tell who wrote it

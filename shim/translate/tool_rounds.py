"""How many tool rounds the current turn has run: the loop guard of a route's ``max_tool_rounds``.

An agent loop sends the history back after every tool call; a weak model (a small base model
behind a function-calling grammar) may call a tool every time and never answer. A route may cap
the rounds: once the items since the last user message hold that many rounds of calls, the
upstream is asked for an answer (``tool_choice: "none"``) instead of another call.
"""

from __future__ import annotations

from collections.abc import Sequence

from shim.wire import responses as r

__all__ = ["CALL_ITEMS", "OUTPUT_ITEMS", "tool_rounds"]

# Every client-executed call item: what a model asked the client to run.
CALL_ITEMS = (
    r.FunctionCallItemParam,
    r.CustomToolCallItemParam,
    r.ApplyPatchCallItemParam,
    r.ShellCallItemParam,
    r.LocalShellCallItemParam,
)
# Their outputs: what the client sends back after running one.
OUTPUT_ITEMS = (
    r.FunctionCallOutputItemParam,
    r.CustomToolCallOutputItemParam,
    r.ApplyPatchCallOutputItemParam,
    r.ShellCallOutputItemParam,
    r.LocalShellCallOutputItemParam,
)


def tool_rounds(items: Sequence[r.ItemParam]) -> int:
    """Rounds of function calls after the last user message: each unbroken run of
    ``function_call`` items (one assistant turn's parallel calls) counts once."""
    rounds = 0
    in_run = False
    for item in reversed(items):
        if isinstance(item, r.MessageItemParam) and item.role == "user":
            break
        is_call = isinstance(item, CALL_ITEMS)
        if is_call and not in_run:
            rounds += 1
        # Outputs and reasoning sit between the calls of one turn and the next turn's calls.
        in_run = is_call or (in_run and isinstance(item, r.ReasoningItemParam))
    return rounds

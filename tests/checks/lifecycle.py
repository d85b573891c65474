"""Our own checker for the Open Responses stream lifecycle (what the spec's types cannot check).

Rules (REFERENCE.md, "Streaming"):
- the first events are ``response.created`` then ``response.in_progress``; exactly one terminal
  event (completed / incomplete / failed) comes last, preceded by ``error`` when failed;
- ``sequence_number`` starts at 0 and increases by one;
- output items are added in order (output_index 0, 1, …), one at a time: an item is done before
  the next one is added; every added item is done, with the same id and type;
- content parts are added and done in order inside their open item; deltas only touch the open
  part; a ``*.done`` text equals the concatenation of its deltas;
- function calls have no content-part events; their arguments done equals the deltas joined;
  likewise a custom tool call's input (``response.custom_tool_call_input.*``);
- the terminal snapshot's ``output`` equals the items of the ``output_item.done`` events.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_lifecycle"]

TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


def check_lifecycle(events: list[dict[str, Any]]) -> None:
    assert events, "empty stream"
    types = [e["type"] for e in events]
    assert types[0] == "response.created", types[:2]
    assert types[1] == "response.in_progress", types[:2]
    assert types[-1] in TERMINAL, types[-1]
    assert sum(t in TERMINAL for t in types) == 1, "exactly one terminal event"
    if types[-1] == "response.failed":
        assert types[-2] == "error", "failed must follow an error event"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))

    open_item: dict[str, Any] | None = None
    open_index = -1
    open_part: int | None = None
    part_text: list[str] = []
    args: list[str] = []
    done_items: list[dict[str, Any]] = []
    for e in events[2:-1]:
        t = e["type"]
        if t == "response.output_item.added":
            assert open_item is None, f"item {e['output_index']} added while {open_index} open"
            assert e["output_index"] == len(done_items), "output_index must count up"
            open_item, open_index, open_part, args = e["item"], e["output_index"], None, []
            assert open_item.get("status", "in_progress") == "in_progress" or open_item["type"] == "reasoning"
            continue
        if t == "error":
            continue
        assert open_item is not None, f"{t} outside an item"
        assert e["output_index"] == open_index, t
        if "item_id" in e:
            assert e["item_id"] == open_item["id"], t
        if t == "response.output_item.done":
            assert open_part is None, "item done with a content part open"
            item = e["item"]
            assert item["id"] == open_item["id"] and item["type"] == open_item["type"]
            if item["type"] == "function_call":
                assert item["arguments"] == "".join(args)
            if item["type"] == "custom_tool_call":
                assert item["input"] == "".join(args)
            done_items.append(item)
            open_item = None
        elif t in ("response.content_part.added", "response.reasoning_summary_part.added"):
            assert open_item["type"] != "function_call"
            assert open_part is None, "two parts open"
            open_part, part_text = e.get("content_index", e.get("summary_index")), []
        elif t in ("response.content_part.done", "response.reasoning_summary_part.done"):
            assert open_part == e.get("content_index", e.get("summary_index")), t
            part = e["part"]
            text = part.get("text", part.get("refusal"))
            assert text == "".join(part_text), f"{t} text differs from its deltas"
            open_part = None
        elif t.endswith(".delta"):
            if t == "response.function_call_arguments.delta":
                assert open_item["type"] == "function_call"
                args.append(e["delta"])
            elif t == "response.custom_tool_call_input.delta":
                assert open_item["type"] == "custom_tool_call"
                args.append(e["delta"])
            else:
                assert open_part is not None, f"{t} with no open part"
                part_text.append(e["delta"])
        elif t.endswith(".done"):
            if t == "response.function_call_arguments.done":
                assert e["arguments"] == "".join(args)
            elif t == "response.custom_tool_call_input.done":
                assert e["input"] == "".join(args)
            else:
                text = e.get("text", e.get("refusal"))
                assert text == "".join(part_text), f"{t} text differs from its deltas"
        else:
            raise AssertionError(f"unexpected event {t}")
    assert open_item is None, "an item was never done"
    final = events[-1]["response"]
    assert final["output"] == done_items, "final output differs from the done items"
    status = {"response.completed": "completed", "response.incomplete": "incomplete"}.get(types[-1], "failed")
    assert final["status"] == status
    if status == "incomplete":
        assert final["incomplete_details"] and final["incomplete_details"]["reason"]
        if done_items:
            # The item cut by the budget ends incomplete and is the last one.
            assert all(i.get("status", "completed") != "incomplete" for i in done_items[:-1])

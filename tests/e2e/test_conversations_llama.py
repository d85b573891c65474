"""Conversations over the real llama.cpp upstream, driven by the openai SDK, on every store
backend: turns over HTTP JSON, SSE, WebSocket and background share one conversation, and the
recording proxy shows the model received the conversation's items as its history each time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.test_previous_response_chains import (  # noqa: F401 (fixtures)
    FACT,
    PLACE,
    QUESTION,
    SETTINGS,
    chain_shim,
    create_streamed,
    proxy,
    redis_url,
    sdk,
    sent,
    ws_turn,
)
from tests.support.recording_proxy import RecordingProxy

openai = pytest.importorskip("openai")


def _said(item: Any) -> tuple[str, str]:
    return item.role, "".join(part.text for part in item.content)


def test_one_conversation_over_every_transport(sdk: Any, proxy: RecordingProxy) -> None:  # noqa: F811
    conv = sdk.conversations.create(items=[{"role": "user", "content": FACT}], metadata={"e2e": "llama"})
    first = sdk.responses.create(**SETTINGS, input=PLACE, conversation=conv.id)
    second = create_streamed(sdk, input=QUESTION, conversation={"id": conv.id})
    with sdk.responses.connect() as connection:
        third = ws_turn(connection, input="And where?", conversation=conv.id)
    queued = sdk.responses.create(**SETTINGS, input="Thanks.", conversation=conv.id, background=True)
    deadline = time.monotonic() + 120
    fourth = sdk.responses.retrieve(queued.id)
    while fourth.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        fourth = sdk.responses.retrieve(queued.id)
    assert fourth.status in ("completed", "incomplete"), fourth  # 8 tokens may end it incomplete
    for made in (first, second, third, fourth):
        assert made.conversation is not None and made.conversation.id == conv.id, made

    answers = [first.output_text, second.output_text, third.output_text]
    history = [("user", FACT)]
    for said, answer, body in zip(
        (PLACE, QUESTION, "And where?", "Thanks."), [*answers, None], sent(proxy), strict=True
    ):
        assert body == [*history, ("user", said)], "the model saw the conversation's items"
        history += [("user", said), ("assistant", answer or "")]

    items = list(sdk.conversations.items.list(conv.id, order="asc"))
    assert [_said(i) for i in items[:-1]] == history[:-1]
    assert items[-1].role == "assistant" and len(items) == 9
    assert sdk.conversations.retrieve(conv.id).metadata == {"e2e": "llama"}

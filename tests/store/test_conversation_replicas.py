"""One conversation, many turns at once, through two real ``shim serve`` replicas (processes)
sharing one real ``redis-server``: no item is lost, and no turn's items are interleaved with
another's (the append is one compare-and-set, ``conversation/conversation_items.py``).

The upstream is the scripted Chat model as a process (``tests/support/scripted_chat.py``), which
ends every answer with "You said: <the last user text>", so each answer names its own turn.
Turns go over JSON, SSE and background on both replicas, and the items are read back through
the replica that did not create the conversation.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.store.conftest import redis_url  # noqa: F401 (the session's redis-server)
from tests.support.processes import ROOT, Served, serve_script, serve_shim, stop

SECRET = "conversation-replicas-secret-0123456789abcdef"  # replicas share it: scopes derive from it
TURNS = 18  # a third each over JSON, SSE and background, alternating replicas


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[tuple[Served, Served]]:  # noqa: F811
    script = ROOT / "tests" / "support" / "scripted_chat.py"
    upstream = serve_script(script, tmp_path / "upstream.log", what="the scripted upstream", timeout=60)
    store = f"{redis_url}?prefix=conv{uuid.uuid4().hex[:8]}:"
    served: list[Served] = []
    try:
        for name in ("a", "b"):
            home = tmp_path / name
            home.mkdir()
            args = ("--upstream", upstream.base_url, "--store", store)
            served.append(serve_shim(home, *args, env={"SHIM_SECRET": SECRET}, timeout=60))
        yield served[0], served[1]
    finally:
        for server in [*served, upstream]:
            stop(server.proc, timeout=10)


async def _turn(http: httpx.AsyncClient, base: str, conversation: str, n: int) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "input": f"turn-{n}", "conversation": conversation}
    mode = n % 3
    if mode == 1:
        body["stream"] = True
    if mode == 2:
        body["background"] = True
    answer = await http.post(f"{base}/responses", json=body)
    assert answer.status_code == 200, answer.text
    if mode == 1:
        assert answer.text.rstrip().endswith("data: [DONE]") and "response.completed" in answer.text
        return {"stream": True}
    resource: dict[str, Any] = answer.json()
    deadline = time.monotonic() + 60
    while resource["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        resource = (await http.get(f"{base}/responses/{resource['id']}")).json()
    assert resource["status"] == "completed", resource
    assert resource["conversation"] == {"id": conversation}
    return resource


def _text(item: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in item["content"])


async def test_concurrent_turns_on_one_conversation_across_replicas(
    replicas: tuple[Served, Served],
) -> None:
    a, b = replicas
    async with httpx.AsyncClient(timeout=60) as http:
        made = await http.post(
            f"{a.base_url}/conversations", json={"items": [{"role": "user", "content": "Hello."}]}
        )
        assert made.status_code == 200, made.text
        conversation = made.json()["id"]
        bases = [a.base_url, b.base_url]
        await asyncio.gather(*(_turn(http, bases[n % 2], conversation, n) for n in range(TURNS)))
        listed = await http.get(
            f"{b.base_url}/conversations/{conversation}/items", params={"order": "asc", "limit": 100}
        )
    assert listed.status_code == 200, listed.text
    items = listed.json()["data"]
    assert _text(items[0]) == "Hello."
    pairs = items[1:]
    assert len(pairs) == 2 * TURNS, [_text(i) for i in pairs]  # nothing lost
    asked = []
    for question, answer in zip(pairs[::2], pairs[1::2], strict=True):
        # each turn's input is followed by its own answer: no turn interleaved with another
        assert question["role"] == "user" and answer["role"] == "assistant", (question, answer)
        assert _text(answer).endswith(f"You said: {_text(question)}"), (question, answer)
        asked.append(_text(question))
    assert sorted(asked) == sorted(f"turn-{n}" for n in range(TURNS))

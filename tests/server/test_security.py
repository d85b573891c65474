"""Issue 12's security findings, each over HTTP against a recording upstream.

- remembered reasoning is bound to the whole history before the assistant turn, not its text;
- credentials: which ``Authorization`` each upstream receives, for every endpoint and route
  configuration; with ``api_keys`` set every ``/v1`` endpoint wants a shim key;
- a bearer token that is not printable ASCII is a 401 in the error envelope, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from shim.settings import Route
from tests.server.harness import UPSTREAM_URL, Shim
from tests.server.test_chat_over_responses import chunks_of, content_of
from tests.support.scripted_responses import ScriptedResponses

Connect = Callable[[Shim], httpx.AsyncClient]
MakeShim = Callable[..., Shim]


def _responses_shim(make_shim: MakeShim, upstream: ScriptedResponses) -> Shim:
    return make_shim(target=upstream, routes=(Route(upstream=UPSTREAM_URL, kind="responses"),))


# --------------------------------------------------------------------------- finding 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_reasoning_is_not_recalled_into_another_conversation(
    make_shim: MakeShim, connect: Connect, stream: bool
) -> None:
    """Two conversations of one caller whose assistant turns read the same: the second one's
    upstream request must not carry the first one's reasoning (summary or encrypted_content)."""
    upstream = ScriptedResponses(reasoning=["Alice's private plan."])
    client = connect(_responses_shim(make_shim, upstream))
    first = [{"role": "user", "content": "Plan my surprise party."}]
    answer = await client.post(
        "/v1/chat/completions", json={"model": "m", "messages": first, "stream": stream}
    )
    assert answer.status_code == 200
    said = content_of(chunks_of(answer.text)) if stream else answer.json()["choices"][0]["message"]["content"]
    # Another conversation, whose assistant turn has the very same text after a different history.
    other = [
        {"role": "user", "content": "Something unrelated."},
        {"role": "assistant", "content": said},
        {"role": "user", "content": "Thanks."},
    ]
    assert (
        await client.post("/v1/chat/completions", json={"model": "m", "messages": other})
    ).status_code == 200
    sent = upstream.requests[-1]["input"]
    assert [i["type"] for i in sent] == ["message", "message", "message"], sent
    assert "Alice" not in repr(sent) and "enc:" not in repr(sent)
    # The conversation it belongs to still gets it back (same caller, same history).
    own = [*first, {"role": "assistant", "content": said}, {"role": "user", "content": "More."}]
    await client.post("/v1/chat/completions", json={"model": "m", "messages": own})
    assert [i["type"] for i in upstream.requests[-1]["input"]] == [
        "message",
        "reasoning",
        "message",
        "message",
    ]

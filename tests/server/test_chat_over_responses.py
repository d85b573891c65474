"""``POST /v1/chat/completions`` over an Open Responses upstream, and both endpoints' pass-through.

The upstream is ``tests/support/scripted_responses.py`` (JSON + SSE, optional reasoning with
``encrypted_content``, optionally stateful, optionally rejecting ``previous_response_id`` as
Ollama's does); chat routes use ``scripted_chat``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.settings import Route
from tests.server.harness import UPSTREAM_URL, Shim, reasoning_app, status_app
from tests.support import scripted_chat
from tests.support.scripted_responses import ScriptedResponses

Connect = Callable[[Shim], httpx.AsyncClient]
HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def responses_shim(make_shim: Callable[..., Shim], upstream: ScriptedResponses, **route: Any) -> Shim:
    return make_shim(target=upstream, routes=(Route(upstream=UPSTREAM_URL, kind="responses", **route),))


def chunks_of(text: str) -> list[dict[str, Any]]:
    """The ``data:`` payloads of a Chat stream (``[DONE]`` must come last, exactly once)."""
    blocks = [b for b in text.split("\n\n") if b and not b.startswith(":")]
    assert blocks[-1] == "data: [DONE]", blocks[-3:]
    assert sum(b == "data: [DONE]" for b in blocks) == 1
    return [json.loads(b.removeprefix("data: ")) for b in blocks[:-1]]


def content_of(chunks: list[dict[str, Any]], index: int = 0, key: str = "content") -> str:
    return "".join(ch["delta"].get(key) or "" for c in chunks for ch in c["choices"] if ch["index"] == index)


def finish_of(chunks: list[dict[str, Any]], index: int = 0) -> list[str]:
    return [
        ch["finish_reason"]
        for c in chunks
        for ch in c["choices"]
        if ch["index"] == index and ch["finish_reason"]
    ]


async def test_json_and_stream_agree(make_shim: Callable[..., Shim], connect: Connect) -> None:
    upstream = ScriptedResponses(reasoning=["Let me ", "think."])
    client = connect(responses_shim(make_shim, upstream))
    body = {"model": "m", "messages": HELLO, "max_completion_tokens": 100, "temperature": 0}
    whole = (await client.post("/v1/chat/completions", json=body)).json()
    message = whole["choices"][0]["message"]
    assert message["content"].endswith("You said: Hello")
    assert message["reasoning_content"] == "Let me think."
    assert whole["choices"][0]["finish_reason"] == "stop"
    assert whole["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5
    sent = upstream.requests[0]
    assert sent["input"] == [{"type": "message", "role": "user", "content": "Hello"}]
    assert sent["max_output_tokens"] == 100 and sent["store"] is False
    assert sent["include"] == ["reasoning.encrypted_content"]

    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    response = await client.post("/v1/chat/completions", json=stream)
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = chunks_of(response.text)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert content_of(chunks) == message["content"]
    assert content_of(chunks, key="reasoning_content") == message["reasoning_content"]
    assert finish_of(chunks) == ["stop"]
    assert (
        chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == whole["usage"]["total_tokens"]
    )
    assert all(c["usage"] is None for c in chunks[:-1])


@pytest.mark.parametrize(
    ("route", "header", "field", "expected"),
    [
        ("reasoning_content", None, "reasoning_content", "Let me think."),
        ("reasoning_content", "reasoning", "reasoning", "Let me think."),
        ("reasoning", None, "reasoning", "Let me think."),
        ("reasoning_content", "think_tags", "content", "<think>Let me think.</think>The scripted"),
        ("think_tags", None, "content", "<think>Let me think.</think>The scripted"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_modes(
    make_shim: Callable[..., Shim],
    connect: Connect,
    route: str,
    header: str | None,
    field: str,
    expected: str,
    stream: bool,
) -> None:
    upstream = ScriptedResponses(reasoning=["Let me ", "think."])
    client = connect(responses_shim(make_shim, upstream, reasoning=route))
    headers = {"x-shim-reasoning": header} if header else {}
    body = {"model": "m", "messages": HELLO, "stream": stream}
    response = await client.post("/v1/chat/completions", json=body, headers=headers)
    if stream:
        value = content_of(chunks_of(response.text), key=field)
    else:
        value = response.json()["choices"][0]["message"][field]
    assert value.startswith(expected)


async def test_bad_reasoning_header(make_shim: Callable[..., Shim], connect: Connect) -> None:
    client = connect(responses_shim(make_shim, ScriptedResponses()))
    response = await client.post(
        "/v1/chat/completions", json={"model": "m", "messages": HELLO}, headers={"x-shim-reasoning": "loud"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-shim-reasoning"


@pytest.mark.parametrize(
    ("stop", "content"),
    [
        (["hello and"], "The scripted upstream says "),  # spans two upstream deltas
        ("upstream", "The scripted "),
        (["zzz", " says"], "The scripted upstream"),
        (["not in the answer"], None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_stop_sequences(
    make_shim: Callable[..., Shim], connect: Connect, stop: Any, content: str | None, stream: bool
) -> None:
    client = connect(responses_shim(make_shim, ScriptedResponses()))
    body = {"model": "m", "messages": HELLO, "stop": stop, "stream": stream}
    response = await client.post("/v1/chat/completions", json=body)
    if stream:
        chunks = chunks_of(response.text)
        text, finish = content_of(chunks), finish_of(chunks)
    else:
        choice = response.json()["choices"][0]
        text, finish = choice["message"]["content"], [choice["finish_reason"]]
    assert finish == ["stop"]
    if content is None:
        assert text.endswith("You said: Hello")
    else:
        assert text == content


@pytest.mark.parametrize("stream", [False, True])
async def test_n_choices(make_shim: Callable[..., Shim], connect: Connect, stream: bool) -> None:
    upstream = ScriptedResponses()
    client = connect(responses_shim(make_shim, upstream))
    body = {
        "model": "m",
        "messages": HELLO,
        "n": 3,
        "stream": stream,
        "stream_options": {"include_usage": True},
    }
    if not stream:
        body.pop("stream_options")
    response = await client.post("/v1/chat/completions", json=body)
    assert len(upstream.requests) == 3
    assert all("n" not in r for r in upstream.requests)
    if stream:
        chunks = chunks_of(response.text)
        for k in range(3):
            assert content_of(chunks, k).endswith("You said: Hello")
            assert finish_of(chunks, k) == ["stop"]
        assert chunks[-1]["usage"]["completion_tokens"] == 60
    else:
        data = response.json()
        assert [c["index"] for c in data["choices"]] == [0, 1, 2]
        assert data["usage"]["completion_tokens"] == 60


async def test_usage_chunk_says_null_when_the_upstream_counted_nothing(
    make_shim: Callable[..., Shim], connect: Connect
) -> None:
    client = connect(responses_shim(make_shim, ScriptedResponses(usage=False)))
    body = {"model": "m", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    chunks = chunks_of((await client.post("/v1/chat/completions", json=body)).text)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] is None  # no invented zeros
    assert content_of(chunks).endswith("You said: Hello")


@pytest.mark.parametrize("n", [0, 9])
async def test_n_out_of_range(make_shim: Callable[..., Shim], connect: Connect, n: int) -> None:
    client = connect(responses_shim(make_shim, ScriptedResponses()))
    response = await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO, "n": n})
    assert response.status_code == 400 and response.json()["error"]["param"] == "n"


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call(make_shim: Callable[..., Shim], connect: Connect, stream: bool) -> None:
    upstream = ScriptedResponses()
    client = connect(responses_shim(make_shim, upstream))
    body = {"model": "m", "messages": HELLO, "tools": [WEATHER], "tool_choice": "required", "stream": stream}
    response = await client.post("/v1/chat/completions", json=body)
    assert upstream.requests[0]["tools"][0]["name"] == "get_weather"
    assert upstream.requests[0]["tool_choice"] == "required"
    if stream:
        chunks = chunks_of(response.text)
        calls = [t for c in chunks for ch in c["choices"] for t in ch["delta"].get("tool_calls") or []]
        assert calls[0]["id"] == "call_1" and calls[0]["index"] == 0
        assert "".join(t["function"]["arguments"] for t in calls) == '{"city": "San Francisco"}'
        assert finish_of(chunks) == ["tool_calls"]
    else:
        choice = response.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_error_in_chat_envelope(
    make_shim: Callable[..., Shim], connect: Connect, stream: bool
) -> None:
    error = {
        "error": {"message": "no such model", "type": "invalid_request_error", "code": "model_not_found"}
    }
    shim = make_shim(target=status_app(404, error), routes=(Route(upstream=UPSTREAM_URL, kind="responses"),))
    response = await connect(shim).post(
        "/v1/chat/completions", json={"model": "m", "messages": HELLO, "stream": stream}
    )
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no such model"


async def test_invalid_body(make_shim: Callable[..., Shim], connect: Connect) -> None:
    client = connect(responses_shim(make_shim, ScriptedResponses()))
    bad = await client.post(
        "/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    wrong = await client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user"}]})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "messages[0].content"


def truncated_responses(keep: int) -> Any:
    upstream = ScriptedResponses()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        request = json.loads(message.get("body", b"{}"))
        events = upstream.events(request)[:keep]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for event in events:
            data = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def test_mid_stream_failure_ends_with_error_chunk(
    make_shim: Callable[..., Shim], connect: Connect
) -> None:
    shim = make_shim(target=truncated_responses(6), routes=(Route(upstream=UPSTREAM_URL, kind="responses"),))
    response = await connect(shim).post(
        "/v1/chat/completions", json={"model": "m", "messages": HELLO, "stream": True}
    )
    chunks = chunks_of(response.text)
    assert chunks[-1] == {
        "error": {
            "message": "The upstream stream ended unexpectedly.",
            "type": "server_error",
            "param": None,
            "code": "upstream_stream_truncated",
        }
    }
    assert not finish_of(chunks[:-1])


# ------------------------------------------------------------------------- continuity


@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_is_sent_back(make_shim: Callable[..., Shim], connect: Connect, stream: bool) -> None:
    """The client drops reasoning from its history; the shim puts the upstream's items back."""
    upstream = ScriptedResponses(reasoning=["Because."])
    client = connect(responses_shim(make_shim, upstream))
    first = await client.post(
        "/v1/chat/completions", json={"model": "m", "messages": HELLO, "stream": stream}
    )
    text = content_of(chunks_of(first.text)) if stream else first.json()["choices"][0]["message"]["content"]
    history = [*HELLO, {"role": "assistant", "content": text}, {"role": "user", "content": "More"}]
    await client.post("/v1/chat/completions", json={"model": "m", "messages": history})
    sent = upstream.requests[1]["input"]
    assert [i["type"] for i in sent] == ["message", "reasoning", "message", "message"]
    assert sent[1]["encrypted_content"] == "enc:1"
    assert sent[1]["content"] == [{"type": "reasoning_text", "text": "Because."}]
    # Another caller's identical history gets nothing back.
    other = {"authorization": "Bearer someone-else"}
    await client.post("/v1/chat/completions", json={"model": "m", "messages": history}, headers=other)
    assert [i["type"] for i in upstream.requests[2]["input"]] == ["message", "message", "message"]


async def test_think_tags_come_back_as_reasoning(make_shim: Callable[..., Shim], connect: Connect) -> None:
    upstream = ScriptedResponses(reasoning=["Hmm."])
    client = connect(responses_shim(make_shim, upstream, reasoning="think_tags"))
    first = (await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO})).json()
    text = first["choices"][0]["message"]["content"]
    assert text.startswith("<think>Hmm.</think>")
    history = [*HELLO, {"role": "assistant", "content": text}, {"role": "user", "content": "More"}]
    await client.post("/v1/chat/completions", json={"model": "m", "messages": history})
    sent = upstream.requests[1]["input"]
    assert sent[1]["encrypted_content"] == "enc:1"
    assert "<think>" not in json.dumps(sent[2])


async def test_stateful_upstream_gets_only_new_messages(
    make_shim: Callable[..., Shim], connect: Connect
) -> None:
    upstream = ScriptedResponses(stateful=True)
    client = connect(responses_shim(make_shim, upstream, stateful=True, continue_upstream=True))
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}, *HELLO]
    saved = []
    for turn in range(3):
        response = await client.post("/v1/chat/completions", json={"model": "m", "messages": history})
        saved.append(int(response.headers.get("x-shim-upstream-bytes-saved", "0")))
        text = response.json()["choices"][0]["message"]["content"]
        assert text.endswith(f"You said: {history[-1]['content']}")
        history += [{"role": "assistant", "content": text}, {"role": "user", "content": f"Turn {turn}"}]
    first, second, third = upstream.requests
    assert first["store"] is True and "previous_response_id" not in first
    assert second["previous_response_id"] == "resp_scripted_1"
    assert second["input"] == [{"type": "message", "role": "user", "content": "Turn 0"}]
    assert third["previous_response_id"] == "resp_scripted_2"
    assert saved[0] == 0 and 0 < saved[1] < saved[2]


async def test_continuation_falls_back_when_refused(make_shim: Callable[..., Shim], connect: Connect) -> None:
    upstream = ScriptedResponses(stateful=True)
    client = connect(responses_shim(make_shim, upstream, stateful=True, continue_upstream=True))
    first = (await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO})).json()
    upstream.history.clear()  # the upstream forgot (expiry, restart)
    history = [*HELLO, first["choices"][0]["message"], {"role": "user", "content": "More"}]
    response = await client.post(
        "/v1/chat/completions", json={"model": "m", "messages": history, "stream": True}
    )
    assert content_of(chunks_of(response.text)).endswith("You said: More")
    assert "x-shim-upstream-bytes-saved" not in response.headers
    assert (
        "previous_response_id" in upstream.requests[1] and "previous_response_id" not in upstream.requests[2]
    )
    assert len(upstream.requests[2]["input"]) == 3


# ------------------------------------------------------------------------- pass-through


@pytest.mark.parametrize("stream", [False, True])
async def test_stateless_responses_upstream_gets_state(
    make_shim: Callable[..., Shim], connect: Connect, stream: bool
) -> None:
    """An upstream that rejects previous_response_id (as Ollama's does) still serves a chain."""
    upstream = ScriptedResponses(reject_previous_id=True)
    client = connect(responses_shim(make_shim, upstream))

    async def turn(body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post("/v1/responses", json={**body, "stream": stream})
        assert response.status_code == 200, response.text
        if not stream:
            return dict(response.json())
        events = [json.loads(b.split("data: ", 1)[1]) for b in response.text.split("\n\n") if "data: " in b]
        assert events[-1]["type"] == "response.completed"
        return dict(events[-1]["response"])

    first = await turn({"model": "m", "input": "Hello"})
    second = await turn({"model": "m", "input": "Again", "previous_response_id": first["id"]})
    third = await turn({"model": "m", "input": "Last", "previous_response_id": second["id"]})
    assert third["output"][0]["content"][0]["text"].endswith("You said: Last")
    sent = upstream.requests[2]
    assert "previous_response_id" not in sent
    roles = [(i["type"], i.get("role")) for i in sent["input"]]
    assert roles == [("message", "user"), ("message", "assistant")] * 2 + [("message", "user")]
    missing = await client.post(
        "/v1/responses", json={"model": "m", "input": "x", "previous_response_id": "resp_nope"}
    )
    assert missing.status_code == 404


async def test_stateful_responses_upstream_passes_through(
    make_shim: Callable[..., Shim], connect: Connect
) -> None:
    upstream = ScriptedResponses(stateful=True)
    client = connect(responses_shim(make_shim, upstream, stateful=True, model="upstream-name"))
    first = (await client.post("/v1/responses", json={"model": "m", "input": "Hello", "store": True})).json()
    body = {"model": "m", "input": "Again", "previous_response_id": first["id"], "custom_field": 1}
    second = await client.post("/v1/responses", json=body)
    assert second.json()["output"][0]["content"][0]["text"].endswith("You said: Again")
    assert upstream.requests[1] == {**body, "model": "upstream-name"}


async def test_chat_route_passes_through(make_shim: Callable[..., Shim], connect: Connect) -> None:
    shim = make_shim()
    client = connect(shim)
    body = {"model": "m", "messages": HELLO, "vendor_knob": True}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.json() == scripted_chat.completion(body)
    assert shim.upstream.bodies[-1] == body
    stream = await client.post("/v1/chat/completions", json={**body, "stream": True})
    assert chunks_of(stream.text) == scripted_chat.chunks({**body, "stream": True})


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("header", "field", "expected"),
    [
        (None, "reasoning_content", "Thinking hard."),  # raw: the vendor's own field
        ("reasoning", "reasoning", "Thinking hard."),
        ("think_tags", "content", "<think>Thinking hard.</think>Answer."),
    ],
)
async def test_chat_route_normalizes_when_asked(
    make_shim: Callable[..., Shim],
    connect: Connect,
    stream: bool,
    header: str | None,
    field: str,
    expected: str,
) -> None:
    shim = make_shim(target=reasoning_app(["Thinking ", "hard."], ["Answer."]), dialect="deepseek")
    headers = {"x-shim-reasoning": header} if header else {}
    response = await connect(shim).post(
        "/v1/chat/completions", json={"model": "m", "messages": HELLO, "stream": stream}, headers=headers
    )
    if stream:
        assert content_of(chunks_of(response.text), key=field) == expected
    else:
        assert response.json()["choices"][0]["message"][field] == expected


# ------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("argv", "env", "kind", "stateful"),
    [
        ([], {}, "chat", False),
        (["--upstream-kind", "responses"], {}, "responses", False),
        (["--kind", "responses", "--stateful"], {}, "responses", True),
        ([], {"SHIM_UPSTREAM_KIND": "responses", "SHIM_UPSTREAM_STATEFUL": "true"}, "responses", True),
        (["--upstream-kind", "chat"], {"SHIM_UPSTREAM_KIND": "responses"}, "chat", False),
    ],
)
def test_route_kind_from_flags_and_environment(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], kind: str, stateful: bool
) -> None:
    from shim.cli.command import build_parser
    from shim.settings import load_settings

    for name in ("SHIM_UPSTREAM_KIND", "SHIM_UPSTREAM_STATEFUL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args(["serve", "--upstream", "http://u/v1", *argv])
    settings = load_settings(upstream=args.upstream, kind=args.kind, stateful=args.stateful)
    assert (settings.routes[0].kind, settings.routes[0].stateful) == (kind, stateful)


def test_websocket_turn_on_a_responses_route_is_refused(make_shim: Callable[..., Shim]) -> None:
    from litestar.testing import TestClient

    shim = responses_shim(make_shim, ScriptedResponses())
    with TestClient(app=shim.app) as client, client.websocket_connect("/v1/responses") as ws:
        ws.send_text(json.dumps({"type": "response.create", "model": "m", "input": "Hi"}))
        error = json.loads(ws.receive_text(timeout=5))
    assert error["type"] == "error" and error["error"]["code"] == "unsupported_route"

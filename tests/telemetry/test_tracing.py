"""Traces (shim/tracing): the spans of each kind of turn in the SDK's in-memory exporter — the
request span, the upstream call's GenAI attributes read from JSON and SSE answers of both upstream
formats, store operations, a WebSocket turn, an incoming ``traceparent``, the trace id in the
access log, no prompt or completion text unless the operator asks, and the hosted-tool helper."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shim import tracing
from shim.http.app import create_app
from shim.settings import Route, ServerSettings, Settings
from shim.upstream.client import UpstreamClient
from tests.server.harness import UPSTREAM_URL, Upstream
from tests.server.test_websocket import turn
from tests.support.fault_upstream import ANSWER as FAULT_ANSWER
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim
from tests.support.scripted_chat import ANSWER as SCRIPTED_ANSWER
from tests.support.scripted_responses import ScriptedResponses

PROMPT = "a prompt the operator must not see"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def _only(spans: list[ReadableSpan], kind: SpanKind, name: str | None = None) -> ReadableSpan:
    found = [s for s in spans if s.kind == kind and (name is None or s.name == name)]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def _finished(spans: InMemorySpanExporter, servers: int = 1) -> list[ReadableSpan]:
    """The spans once the request span ended: the ASGI transport hands the answer over when its
    last byte is sent, before the app's own finally (access line, request span) has run."""
    for _ in range(200):
        finished = list(spans.get_finished_spans())
        if sum(s.kind == SpanKind.SERVER for s in finished) >= servers:
            return finished
        await asyncio.sleep(0.01)
    raise AssertionError("the request span never ended")


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


@pytest.fixture
async def shim(fault: FaultUpstream) -> AsyncIterator[LiveShim]:
    shim = LiveShim(fault.url)
    yield shim
    await shim.aclose()


@pytest.fixture
async def over_responses() -> AsyncIterator[httpx.AsyncClient]:
    """A shim on a route whose upstream speaks Open Responses. Built before the test runs: a
    Litestar app configures logging when made, which would drop the log capture."""
    settings = Settings(
        server=ServerSettings(store="memory://"), routes=(Route(upstream=UPSTREAM_URL, kind="responses"),)
    )
    upstream = UpstreamClient(settings.server.timeouts, 0, transport=Upstream(ScriptedResponses()))
    app = create_app(settings, upstream=upstream)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as client:
        yield client


CHAT = {"model": "ok", "messages": [{"role": "user", "content": PROMPT}]}
CASES = [
    # path, body, upstream format, the stored turn's store operation (None: nothing stored)
    pytest.param(
        "/v1/responses", {"model": "ok", "input": PROMPT}, "chat", "set", id="responses-over-chat-json"
    ),
    pytest.param(
        "/v1/responses",
        {"model": "ok", "input": PROMPT, "stream": True},
        "chat",
        "set",
        id="responses-over-chat-sse",
    ),
    pytest.param("/v1/chat/completions", CHAT, "chat", None, id="chat-passthrough-json"),
    pytest.param("/v1/chat/completions", {**CHAT, "stream": True}, "chat", None, id="chat-passthrough-sse"),
    pytest.param(
        "/v1/responses", {"model": "m", "input": PROMPT}, "responses", "set", id="responses-passthrough-json"
    ),
    pytest.param(
        "/v1/responses",
        {"model": "m", "input": PROMPT, "stream": True},
        "responses",
        "set",
        id="responses-passthrough-sse",
    ),
    pytest.param(
        "/v1/chat/completions", {**CHAT, "model": "m"}, "responses", None, id="chat-over-responses-json"
    ),
    pytest.param(
        "/v1/chat/completions",
        {**CHAT, "model": "m", "stream": True},
        "responses",
        None,
        id="chat-over-responses-sse",
    ),
]


@pytest.mark.parametrize(("path", "body", "upstream", "store_op"), CASES)
async def test_request_and_upstream_spans(
    shim: LiveShim,
    over_responses: httpx.AsyncClient,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: dict[str, Any],
    upstream: str,
    store_op: str | None,
) -> None:
    caplog.set_level(logging.INFO, logger="shim.access")
    client = shim.client if upstream == "chat" else over_responses
    answer = await client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    finished = await _finished(spans)
    server = _only(finished, SpanKind.SERVER)
    assert server.name == f"POST {path}" and server.parent is None
    assert _attributes(server) == {
        "http.request.method": "POST",
        "url.path": path,
        "http.route": path,
        "http.response.status_code": 200,
        "shim.request_id": answer.headers["x-request-id"],
    }
    call = _only(finished, SpanKind.CLIENT, f"chat {body['model']}")
    assert call.parent is not None and call.parent.span_id == server.context.span_id
    attrs = _attributes(call)
    usage = (3, 4) if upstream == "chat" else (10, 20)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == usage
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == body["model"]
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["openai.api.type"] == ("chat_completions" if upstream == "chat" else "responses")
    assert attrs["gen_ai.response.id"] and attrs["server.address"]
    stores = [s for s in finished if s.name.startswith("store ")]
    assert all(s.parent is not None and s.parent.span_id == server.context.span_id for s in stores)
    if store_op is not None:
        assert f"store {store_op}" in [s.name for s in stores]
    for span in finished:  # no prompt nor completion text unless the operator turns it on
        text = json.dumps(_attributes(span), default=str)
        assert PROMPT not in text
        assert "".join(FAULT_ANSWER) not in text and SCRIPTED_ANSWER[:30] not in text
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "shim.access"]
    assert line["trace_id"] == format(server.context.trace_id, "032x")
    assert line["request_id"] == answer.headers["x-request-id"]


async def test_incoming_traceparent_is_continued(shim: LiveShim, spans: InMemorySpanExporter) -> None:
    await shim.client.post(
        "/v1/responses", json={"model": "ok", "input": "hi"}, headers={"traceparent": TRACEPARENT}
    )
    finished = await _finished(spans)
    server = _only(finished, SpanKind.SERVER)
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_ID
    assert {format(s.context.trace_id, "032x") for s in finished} == {TRACE_ID}


async def test_the_upstream_call_carries_its_trace_context(
    shim: LiveShim, fault: FaultUpstream, spans: InMemorySpanExporter
) -> None:
    await shim.client.post(
        "/v1/responses", json={"model": "ok", "input": "hi"}, headers={"traceparent": TRACEPARENT}
    )
    call = _only(await _finished(spans), SpanKind.CLIENT, "chat ok")
    assert fault.traceparents == [f"00-{TRACE_ID}-{format(call.context.span_id, '016x')}-01"]


async def test_no_trace_context_upstream_with_tracing_off(shim: LiveShim, fault: FaultUpstream) -> None:
    previous = tracing.use(None)
    try:
        answer = await shim.client.post(
            "/v1/responses", json={"model": "ok", "input": "hi"}, headers={"traceparent": TRACEPARENT}
        )
    finally:
        tracing.use(previous)
    assert answer.status_code == 200 and fault.traceparents == [""]


async def test_an_upstream_failure_marks_the_call_span(shim: LiveShim, spans: InMemorySpanExporter) -> None:
    answer = await shim.client.post("/v1/responses", json={"model": "status-503", "input": "hi"})
    assert answer.status_code == 502
    finished = await _finished(spans)
    call = _only(finished, SpanKind.CLIENT, "chat status-503")
    assert call.status.status_code == StatusCode.ERROR
    assert _attributes(call)["error.type"] == answer.json()["error"]["code"]
    server = _only(finished, SpanKind.SERVER)
    assert server.status.status_code == StatusCode.ERROR and _attributes(server)["error.type"] == "502"


async def test_content_only_when_the_operator_turns_it_on(
    shim: LiveShim, spans: InMemorySpanExporter
) -> None:
    active = tracing.active()
    assert active is not None
    active.capture_content = True
    for stream in (False, True):
        body = {"model": "ok", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]}
        assert (await shim.client.post("/v1/chat/completions", json=body)).status_code == 200
    calls = [s for s in await _finished(spans, 2) if s.kind == SpanKind.CLIENT]
    assert len(calls) == 2
    for call in calls:
        attrs = _attributes(call)
        assert json.loads(attrs["gen_ai.input.messages"]) == body["messages"]
        assert attrs["gen_ai.output.messages"] == "".join(FAULT_ANSWER)


def test_websocket_turn_span(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from tests.support.live_shim import isolated_env

    isolated_env(monkeypatch, tmp_path)
    settings = Settings(server=ServerSettings(store="memory://"), routes=(Route(upstream=UPSTREAM_URL),))
    app = create_app(settings, upstream=UpstreamClient(settings.server.timeouts, 0, transport=Upstream()))
    with (
        TestClient(app=app) as client,
        client.websocket_connect("/v1/responses", headers={"traceparent": TRACEPARENT}) as ws,
    ):
        frames = [turn(ws, {"model": "m", "input": "hi"}) for _ in range(2)]
    assert [f[-1]["type"] for f in frames] == ["response.completed"] * 2
    finished = list(spans.get_finished_spans())
    turns = [s for s in finished if s.name == "WEBSOCKET /v1/responses"]
    assert len(turns) == 2 and all(format(s.context.trace_id, "032x") == TRACE_ID for s in turns)
    calls = [s for s in finished if s.kind == SpanKind.CLIENT and s.name == "chat m"]
    assert {c.parent.span_id for c in calls if c.parent} == {t.context.span_id for t in turns}
    assert all(_attributes(c)["gen_ai.usage.input_tokens"] == 12 for c in calls)


@pytest.mark.parametrize("capture", [False, True], ids=["no-content", "content"])
def test_hosted_tool_call_helper(spans: InMemorySpanExporter, capture: bool) -> None:
    active = tracing.active()
    assert active is not None
    active.capture_content = capture
    with active.tracer.start_as_current_span("POST /v1/responses") as parent:
        with tracing.tool_call(
            "get_weather", server="weather", call_id="mcp_1", arguments='{"city":"Paris"}'
        ) as call:
            call.result("sunny")
        with pytest.raises(TimeoutError), tracing.tool_call("search", tool_type="web_search"):
            raise TimeoutError
        with tracing.tool_call("refuse", server="weather") as call:
            call.failed("mcp_tool_error", "the tool said no")
    done = {s.name: s for s in spans.get_finished_spans()}
    ok = done["execute_tool get_weather"]
    assert (
        ok.kind == SpanKind.INTERNAL
        and ok.parent is not None
        and ok.parent.span_id == parent.get_span_context().span_id
    )
    expected = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.type": "extension",
        "gen_ai.tool.call.id": "mcp_1",
        "shim.tool.kind": "mcp",
        "mcp.method.name": "tools/call",
        "mcp.server.name": "weather",
    }
    if capture:
        expected |= {"gen_ai.tool.call.arguments": '{"city":"Paris"}', "gen_ai.tool.call.result": "sunny"}
    assert _attributes(ok) == expected
    raised = done["execute_tool search"]
    assert (
        raised.status.status_code == StatusCode.ERROR and _attributes(raised)["error.type"] == "TimeoutError"
    )
    refused = done["execute_tool refuse"]
    assert (
        refused.status.status_code == StatusCode.ERROR
        and _attributes(refused)["error.type"] == "mcp_tool_error"
    )


def test_helpers_are_no_ops_with_tracing_off() -> None:
    previous = tracing.use(None)
    try:
        with tracing.tool_call("get_weather", server="weather") as call:
            call.result("sunny")
            call.failed("x")
        with tracing.store_span("get", "memory"):
            pass
        route = Route(upstream="http://127.0.0.1:9/v1")
        assert tracing.upstream_call(route, "m", "/chat/completions", b"{}") is None
    finally:
        tracing.use(previous)


async def test_captured_content_never_holds_the_upstream_key(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from tests.support.live_shim import isolated_env

    isolated_env(monkeypatch, tmp_path)
    key = "sk-upstream-secret-0123456789"
    settings = Settings(
        server=ServerSettings(store="memory://", api_keys=("sk-shim",)),
        routes=(Route(upstream=UPSTREAM_URL, api_key=key),),
    )
    app = create_app(settings, upstream=UpstreamClient(settings.server.timeouts, 0, transport=Upstream()))
    active = tracing.active()
    assert active is not None
    active.capture_content = True
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": f"repeat {key}"}],
    }  # the scripted upstream echoes it
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as client:
        answer = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-shim"}
        )
    assert answer.status_code == 200
    (call,) = [s for s in await _finished(spans) if s.kind == SpanKind.CLIENT]
    attrs = _attributes(call)
    assert "[redacted]" in attrs["gen_ai.input.messages"] and "[redacted]" in attrs["gen_ai.output.messages"]
    assert key not in json.dumps(attrs) and key[-8:] not in json.dumps(attrs)

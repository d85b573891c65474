"""WebSocket mode on ``/v1/responses``: turns, connection-local state, error frames, the time limit.

Litestar's sync ``TestClient`` runs the app in a portal thread; the scripted upstream (or a fault
upstream) is reached in-process through the shim's own httpx client.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession

from shim.http import websocket as ws_module
from shim.http.state import app_state
from shim.limits import Limits
from shim.settings import Route
from tests.checks.lifecycle import check_lifecycle
from tests.checks.oracle import validate_event
from tests.server.harness import UPSTREAM_URL, Shim, status_app, text_of, truncated_app
from tests.support import scripted_chat

TERMINAL = {"response.completed", "response.incomplete", "response.failed"}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def open_ws(shim: Shim) -> Iterator[Callable[..., WebSocketTestSession]]:
    """``open_ws(headers=..., app_of=...)``: a WebSocket session on ``/v1/responses`` of the default
    shim, or of ``app_of`` (another ``Shim``). Everything opened is closed after the test."""
    with ExitStack() as stack:
        clients: dict[int, TestClient[Any]] = {}

        def _open(headers: dict[str, str] | None = None, app_of: Shim | None = None) -> WebSocketTestSession:
            target = app_of or shim
            if id(target) not in clients:
                clients[id(target)] = stack.enter_context(TestClient(app=target.app))
            return stack.enter_context(
                clients[id(target)].websocket_connect("/v1/responses", headers=headers)
            )

        yield _open


def frame(ws: WebSocketTestSession, timeout: float = 5.0) -> dict[str, Any]:
    """One frame: a JSON text frame (never binary, never ``[DONE]``)."""
    message = ws.receive(timeout=timeout)
    assert message["type"] == "websocket.send"
    assert message.get("bytes") is None, "events are text frames"
    text = message["text"]
    assert isinstance(text, str) and text != "[DONE]"
    data: dict[str, Any] = json.loads(text)
    if data["type"] != "error":
        validate_event(text.encode())
    return data


def turn(ws: WebSocketTestSession, body: dict[str, Any] | str) -> list[dict[str, Any]]:
    """Send one ``response.create`` (or raw text) and read frames up to the turn's end."""
    ws.send_text(body if isinstance(body, str) else json.dumps({"type": "response.create", **body}))
    frames = [frame(ws)]
    while frames[-1]["type"] not in TERMINAL and frames[-1]["type"] != "error":
        frames.append(frame(ws))
    return frames


def assert_quiet(ws: WebSocketTestSession) -> None:
    """Nothing more after a turn's terminal frame."""
    with pytest.raises(queue.Empty):
        ws.receive(timeout=0.05)


def completed(frames: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    check_lifecycle(frames)
    final: dict[str, Any] = frames[-1]["response"]
    assert final["status"] == status
    return final


def error_of(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """The single error frame of a refused turn, with the shape the spec gives."""
    assert len(frames) == 1, [f["type"] for f in frames]
    (data,) = frames
    assert set(data) == {"type", "status", "error"}
    assert data["type"] == "error"
    assert isinstance(data["status"], int)
    error: dict[str, Any] = data["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert "param" in error
    return data


# --------------------------------------------------------------------------- turns


def test_sequential_turns_on_one_connection(open_ws: Callable[..., WebSocketTestSession], shim: Shim) -> None:
    ws = open_ws()
    first = completed(turn(ws, {"model": "m", "input": "one", "instructions": "Be terse."}))
    assert_quiet(ws)
    second = completed(turn(ws, {"model": "m", "input": "two", "previous_response_id": first["id"]}))
    assert_quiet(ws)
    third = completed(turn(ws, {"model": "m", "input": "three"}))
    assert len({first["id"], second["id"], third["id"]}) == 3
    assert second["previous_response_id"] == first["id"]
    assert second["instructions"] is None
    texts = [[(m["role"], text_of(m)) for m in body["messages"]] for body in shim.upstream.bodies]
    answer = first["output"][0]["content"][0]["text"]
    assert texts == [
        [("system", "Be terse."), ("user", "one")],
        [("user", "one"), ("assistant", answer), ("user", "two")],
        [("user", "three")],
    ]
    assert all(body["stream"] is True for body in shim.upstream.bodies)


@pytest.mark.parametrize("store", [False, True, None], ids=["store-false", "store-true", "store-default"])
def test_continuation_within_the_connection(
    open_ws: Callable[..., WebSocketTestSession], shim: Shim, store: bool | None
) -> None:
    ws = open_ws()
    extra = {} if store is None else {"store": store}
    first = completed(turn(ws, {"model": "m", "input": "Weather?", "tools": [WEATHER_TOOL], **extra}))
    (call,) = first["output"]
    assert call["type"] == "function_call"
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"}
    second = completed(
        turn(
            ws,
            {
                "model": "m",
                "previous_response_id": first["id"],
                "tools": [WEATHER_TOOL],
                "input": [output],
                **extra,
            },
        )
    )
    assert [i["type"] for i in second["output"]] == ["message"]
    assert [m["role"] for m in shim.upstream.bodies[-1]["messages"]] == ["user", "assistant", "tool"]


@pytest.mark.parametrize(
    ("store", "found"), [(False, False), (True, True)], ids=["store-false-is-lost", "store-true-is-kept"]
)
def test_continuation_on_a_new_connection(
    open_ws: Callable[..., WebSocketTestSession], store: bool, found: bool
) -> None:
    first = completed(turn(open_ws(), {"model": "m", "input": "hi", "store": store}))
    frames = turn(open_ws(), {"model": "m", "input": "again", "previous_response_id": first["id"]})
    if found:
        assert completed(frames)["previous_response_id"] == first["id"]
        return
    data = error_of(frames)
    assert data["status"] == 404
    assert data["error"]["code"] == "previous_response_not_found"
    assert data["error"]["param"] == "previous_response_id"


def test_bad_function_call_output_evicts_the_previous_response(
    open_ws: Callable[..., WebSocketTestSession], shim: Shim
) -> None:
    ws = open_ws()
    first = completed(turn(ws, {"model": "m", "input": "Weather?", "tools": [WEATHER_TOOL], "store": False}))
    wrong = {"type": "function_call_output", "call_id": "call_not_from_first", "output": "x"}
    data = error_of(turn(ws, {"model": "m", "previous_response_id": first["id"], "input": [wrong]}))
    assert data["status"] == 400
    assert data["error"]["param"] == "input[0].call_id"
    calls = len(shim.upstream.requests)
    (call,) = first["output"]
    right = {"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"}
    data = error_of(turn(ws, {"model": "m", "previous_response_id": first["id"], "input": [right]}))
    assert (data["status"], data["error"]["code"]) == (404, "previous_response_not_found")
    assert len(shim.upstream.requests) == calls, "refused turns never reach the upstream"
    completed(turn(ws, {"model": "m", "input": "a fresh start"}))


# (id, frame text, status, code, param)
BAD_FRAMES = [
    pytest.param("{not json", 400, "invalid_json", None, id="not-json"),
    pytest.param('["response.create"]', 400, "invalid_type", "type", id="not-an-object"),
    pytest.param('{"model": "m", "input": "hi"}', 400, "invalid_type", "type", id="no-type"),
    pytest.param('{"type": "response.cancel", "model": "m"}', 400, "invalid_type", "type", id="unknown-type"),
    pytest.param(
        '{"type": "response.create", "model": "m", "input": "hi", "stream": false}',
        400,
        "invalid_parameter",
        "stream",
        id="stream-false",  # `stream: true` is tolerated: Codex sends it (test_stream_true_tolerated)
    ),
    pytest.param(
        '{"type": "response.create", "model": "m", "input": "hi", "stream_options": {}}',
        400,
        "invalid_parameter",
        "stream_options",
        id="stream-options",
    ),
    pytest.param(
        '{"type": "response.create", "model": "m", "input": "hi", "background": false}',
        400,
        "invalid_parameter",
        "background",
        id="background",
    ),
    pytest.param(
        '{"type": "response.create", "model": "m", "input": "hi", "temperature": "hot"}',
        400,
        "invalid_value",
        "temperature",
        id="schema-violation",
    ),
    pytest.param(
        '{"type": "response.create", "input": "hi"}',
        400,
        "missing_required_parameter",
        "model",
        id="missing-model",
    ),
]


@pytest.mark.parametrize(("text", "status", "code", "param"), BAD_FRAMES)
def test_bad_frames(
    open_ws: Callable[..., WebSocketTestSession],
    shim: Shim,
    text: str,
    status: int,
    code: str,
    param: str | None,
) -> None:
    ws = open_ws()
    data = error_of(turn(ws, text))
    assert (data["status"], data["error"]["code"], data["error"]["param"]) == (status, code, param)
    assert shim.upstream.requests == []
    completed(turn(ws, {"model": "m", "input": "still open"}))


def test_stream_true_tolerated(open_ws: Callable[..., WebSocketTestSession], shim: Shim) -> None:
    """Codex sends ``stream: true`` in every frame; a WebSocket turn streams anyway."""
    ws = open_ws()
    completed(turn(ws, {"model": "m", "input": "hi", "stream": True}))
    assert shim.upstream.bodies[-1]["stream"] is True


def test_binary_frame_is_read_as_json(open_ws: Callable[..., WebSocketTestSession]) -> None:
    ws = open_ws()
    ws.send_bytes(json.dumps({"type": "response.create", "model": "m", "input": "hi"}).encode())
    frames = [frame(ws)]
    while frames[-1]["type"] not in TERMINAL:
        frames.append(frame(ws))
    completed(frames)


# --------------------------------------------------------------------------- upstream failures


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        pytest.param(
            lambda: status_app(429, {"error": {"message": "slow"}}), 429, "rate_limit_exceeded", id="429"
        ),
        pytest.param(lambda: status_app(500, b"boom"), 502, "upstream_error", id="500"),
        pytest.param(
            lambda: status_app(400, {"error": {"message": "bad", "code": "context_length_exceeded"}}),
            400,
            "context_length_exceeded",
            id="400",
        ),
    ],
)
def test_upstream_error_before_streaming(
    open_ws: Callable[..., WebSocketTestSession],
    shim: Shim,
    target: Callable[[], Any],
    status: int,
    code: str,
) -> None:
    ws = open_ws()
    shim.upstream.use(target())
    data = error_of(turn(ws, {"model": "m", "input": "hi"}))
    assert (data["status"], data["error"]["code"]) == (status, code)
    shim.upstream.use(scripted_chat.app)
    completed(turn(ws, {"model": "m", "input": "recovered"}))


def test_stream_failure_ends_the_turn_with_response_failed(
    open_ws: Callable[..., WebSocketTestSession], shim: Shim
) -> None:
    ws = open_ws()
    first = completed(turn(ws, {"model": "m", "input": "hi", "store": False}))
    shim.upstream.use(truncated_app(keep=3))
    frames = turn(ws, {"model": "m", "input": "more", "previous_response_id": first["id"], "store": False})
    assert "error" not in [f["type"] for f in frames], "response.failed alone ends the turn"
    assert frames[-1]["type"] == "response.failed"
    assert [f["sequence_number"] for f in frames] == list(range(len(frames)))
    failed = frames[-1]["response"]
    assert failed["error"]["code"] == "upstream_stream_truncated"
    assert_quiet(ws)
    shim.upstream.use(scripted_chat.app)
    data = error_of(turn(ws, {"model": "m", "input": "retry", "previous_response_id": first["id"]}))
    assert data["error"]["code"] == "previous_response_not_found", "a failed continuation evicts its parent"


# --------------------------------------------------------------------------- credentials and the time limit


def test_client_key_is_used_per_turn(open_ws: Callable[..., WebSocketTestSession], shim: Shim) -> None:
    ws = open_ws(headers={"authorization": "Bearer sk-user"})
    completed(turn(ws, {"model": "m", "input": "hi"}))
    (request,) = shim.upstream.requests
    assert request.headers["authorization"] == "Bearer sk-user"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param(None, 401, id="no-key"),
        pytest.param({"authorization": "Bearer sk-wrong"}, 401, id="wrong-key"),
        pytest.param({"authorization": "Bearer sk-shim"}, None, id="shim-key"),
    ],
)
def test_route_with_its_own_key(
    open_ws: Callable[..., WebSocketTestSession],
    make_shim: Callable[..., Shim],
    headers: dict[str, str] | None,
    status: int | None,
) -> None:
    keyed = make_shim(routes=(Route(upstream=UPSTREAM_URL, api_key="sk-route"),), api_keys=("sk-shim",))
    ws = open_ws(headers=headers, app_of=keyed)
    frames = turn(ws, {"model": "m", "input": "hi"})
    if status is not None:
        data = error_of(frames)
        assert (data["status"], data["error"]["code"]) == (status, "invalid_api_key")
        assert keyed.upstream.requests == []
        return
    completed(frames)
    (request,) = keyed.upstream.requests
    assert request.headers["authorization"] == "Bearer sk-route"


def test_connection_limit(
    open_ws: Callable[..., WebSocketTestSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_module, "CONNECTION_LIMIT_SECONDS", 0.3)
    ws = open_ws()
    completed(turn(ws, {"model": "m", "input": "quick"}))
    data = frame(ws, timeout=5.0)
    assert data == {
        "type": "error",
        "status": 400,
        "error": {
            "type": "invalid_request_error",
            "code": "websocket_connection_limit_reached",
            "message": data["error"]["message"],
            "param": None,
        },
    }
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive(timeout=5.0)
    assert closed.value.code == 1000


def test_unstreamable_tool_choice_is_replayed_as_frames(
    open_ws: Callable[..., WebSocketTestSession], make_shim: Callable[..., Shim]
) -> None:
    """An upstream that cannot stream a tool choice (``llamacpp-python-functions``): the turn's
    request goes up unstreamed and the whole answer comes back as the usual frames. Both turns
    offer the tool with ``auto`` (no loop guard on this route), so both go up unstreamed; the
    scripted model answers the tool result in text."""
    functions = make_shim(dialect="llamacpp-python-functions")
    ws = open_ws(app_of=functions)
    first = completed(turn(ws, {"model": "m", "input": "Weather in Paris?", "tools": [WEATHER_TOOL]}))
    (call,) = first["output"]
    assert call["type"] == "function_call"
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    body = {"model": "m", "input": [output], "tools": [WEATHER_TOOL], "previous_response_id": first["id"]}
    second = completed(turn(ws, body))
    assert second["output"][-1]["type"] == "message"
    assert [b.get("stream") for b in functions.upstream.bodies] == [None, None]
    assert [b["tool_choice"] for b in functions.upstream.bodies] == ["auto", "auto"]


# --------------------------------------------------------------------------- the body guards, per frame

_DEEP = 10_000
_DEEP_FRAME = '{"type": "response.create", "model": "m", "input": ' + "[" * _DEEP + "]" * _DEEP + "}"
_BIG_FRAME = '{"type": "response.create", "model": "m", "input": "' + "x" * (1024 * 1024) + '"}'
# (frame kind, frame, status, code); a text frame is UTF-8 by definition, so bad UTF-8 is binary only.
GUARDED_FRAMES = {
    "text-10000-deep": ("text", _DEEP_FRAME.encode(), 400, "json_too_deep"),
    "binary-10000-deep": ("binary", _DEEP_FRAME.encode(), 400, "json_too_deep"),
    "text-over-max-body-bytes": ("text", _BIG_FRAME.encode(), 413, "request_too_large"),
    "binary-over-max-body-bytes": ("binary", _BIG_FRAME.encode(), 413, "request_too_large"),
    "binary-not-utf8": (
        "binary",
        b'{"type": "response.create", "model": "m", "input": "\xff\xfe"}',
        400,
        "invalid_utf8",
    ),
}


@pytest.mark.parametrize(
    ("kind", "raw", "status", "code"), GUARDED_FRAMES.values(), ids=GUARDED_FRAMES.keys()
)
def test_frames_get_the_body_guards(
    open_ws: Callable[..., WebSocketTestSession], shim: Shim, kind: str, raw: bytes, status: int, code: str
) -> None:
    """The checks every HTTP body gets (``shim.http.guards``) apply to each frame, answered with
    an error frame; the connection stays usable."""
    ws = open_ws()
    if kind == "text":
        ws.send_text(raw.decode())
    else:
        ws.send_bytes(raw)
    data = error_of([frame(ws)])
    assert (data["status"], data["error"]["code"]) == (status, code)
    assert shim.upstream.requests == []
    completed(turn(ws, {"model": "m", "input": "still open"}))


# --------------------------------------------------------------------------- the bounded connection cache


def _answer(ws: WebSocketTestSession, previous: str | None = None) -> dict[str, Any]:
    """A ``store: false`` turn (continuing ``previous``): its final response or its error frame."""
    body: dict[str, Any] = {"model": "m", "input": "hi", "store": False}
    if previous is not None:
        body["previous_response_id"] = previous
    frames = turn(ws, body)
    return frames[-1] if frames[-1]["type"] == "error" else completed(frames)


@pytest.mark.parametrize(
    ("limits", "plan", "probe", "found"),
    [
        # Three fresh responses, two entries: the oldest goes, the others stay.
        ({"websocket_cache_entries": 2}, [None, None, None], 0, False),
        ({"websocket_cache_entries": 2}, [None, None, None], 1, True),
        # Least recently *used*: continuing from the first keeps it and evicts the second.
        ({"websocket_cache_entries": 2}, [None, None, 0], 1, False),
        ({"websocket_cache_entries": 2}, [None, None, 0], 0, True),
        # A byte bound too small for two: only the newest response stays.
        ({"websocket_cache_bytes": 1}, [None, None], 0, False),
        ({"websocket_cache_bytes": 1}, [None, None], 1, True),
    ],
    ids=["count-evicted", "count-kept", "lru-evicted", "lru-kept", "bytes-evicted", "bytes-newest-kept"],
)
def test_connection_cache_is_bounded(
    open_ws: Callable[..., WebSocketTestSession],
    shim: Shim,
    limits: dict[str, int],
    plan: list[int | None],
    probe: int,
    found: bool,
) -> None:
    """``plan``: per turn, the index of the earlier response it continues (``None``: a new one);
    then a turn continues response ``probe``. An evicted ``store: false`` id answers like an
    unknown one."""
    app_state(shim.app).turns.limits = Limits(**limits)
    ws = open_ws()
    ids: list[str] = []
    for previous in plan:
        ids.append(_answer(ws, None if previous is None else ids[previous])["id"])
    answer = _answer(ws, ids[probe])
    if found:
        assert answer["previous_response_id"] == ids[probe]
    else:
        assert answer["type"] == "error" and answer["error"]["code"] == "previous_response_not_found"

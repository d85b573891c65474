"""A JSON client's hosted rounds, read whole (``hosted_rounds.whole_round``), end as the pump ends
them: for every way an unstreamed round's answer can go (whole, cut mid-body, not a completion,
silent past the idle limit, in the first round or the second) and a store that fails at the end,
the client gets the same status and bytes as through ``event_batches`` and the pump (the path
``complete`` took before, issue 18), on counting ids and a fixed clock.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest

from bench import hosted_inproc
from bench.fake_upstream import chat_answers, chat_tool_call
from shim.errors import UpstreamError
from shim.hosted import mcp_client
from shim.http.state import app_state
from shim.ids import CountingIds, fixed_clock
from shim.store.failures import StoreUnavailable
from shim.store.repository import StoredResponse
from shim.turns import hosted_loop
from shim.turns.context import TurnContext
from shim.turns.responses_over_chat import Turn, open_stream

_URL = "http://upstream.bench/v1"


class _Body(httpx.AsyncByteStream):
    """An answer's body: ``data``, then ``ending`` (``"end"``, ``"break"``: the connection
    drops, ``"stall"``: silence far past the idle limit)."""

    def __init__(self, data: bytes, ending: str) -> None:
        self.data, self.ending = data, ending

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.data:
            yield self.data
        if self.ending == "break":
            raise httpx.ReadError("connection reset")
        if self.ending == "stall":
            await asyncio.sleep(30)
            yield b""


class _Rounds(httpx.AsyncBaseTransport):
    """Round one calls the hosted tool, round two answers; either may go as ``rounds`` says
    (``"half"`` its first half, ``"garbage"``, ``"gzip"`` compressed, ``"nothing"``, else whole)."""

    def __init__(self, rounds: dict[int, tuple[str, str]]) -> None:
        self.whole, _ = chat_answers(20)
        call = json.dumps({"word": hosted_inproc.WORD})
        self.call, _ = chat_tool_call(f"{hosted_inproc.LABEL}__{hosted_inproc.TOOL}", call)
        self.rounds = rounds
        self.seen = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        first = self.seen % 2 == 1  # two rounds a response
        body, ending = self.rounds.get(1 if first else 2, ("", "end"))
        data = self.call if first else self.whole
        if body == "half":
            data = data[: len(data) // 2]
        elif body == "garbage":
            data = b"not a completion"
        elif body == "nothing":
            data = b""
        headers = [(b"content-type", b"application/json")]
        if body == "gzip":
            data = gzip.compress(data)
            headers.append((b"content-encoding", b"gzip"))
        return httpx.Response(200, headers=headers, stream=_Body(data, ending))


async def _through_the_pump(
    ctx: TurnContext, turn: Turn, local: MutableMapping[str, StoredResponse] | None = None
) -> Any:
    """``hosted_loop.complete`` as it was: the rounds drained through ``event_batches``."""
    response = await open_stream(ctx, turn)
    async for _ in hosted_loop.event_batches(ctx, turn, response, local):
        pass
    assert turn.stored is not None
    if turn.unstored is not None:
        raise turn.unstored
    resource = turn.stored.resource
    if resource.status == "failed" and resource.error is not None:
        raise UpstreamError(resource.error.message, code=resource.error.code)
    return resource


CASES = {
    "answered": {},
    "answered-compressed": {1: ("gzip", "end"), 2: ("gzip", "end")},
    "second-round-cut": {2: ("half", "break")},
    "second-round-not-a-completion": {2: ("garbage", "end")},
    "second-round-silent": {2: ("whole", "stall")},
    "first-round-cut": {1: ("half", "break")},
    "first-round-silent": {1: ("half", "stall")},
    "second-round-silent-from-its-start": {2: ("nothing", "stall")},
}


async def _answer(
    monkeypatch: pytest.MonkeyPatch, rounds: dict[int, tuple[str, str]], *, pump: bool, store_down: bool
) -> list[tuple[int, bytes]]:
    from shim.http.app import create_app
    from shim.settings import Route, ServerSettings, Settings, Timeouts
    from shim.upstream.client import UpstreamClient

    monkeypatch.setattr("shim.http.app.RandomIds", CountingIds)
    monkeypatch.setattr("shim.http.app.system_clock", fixed_clock())
    for name, stub in hosted_inproc.mcp_stubs().items():
        monkeypatch.setattr(mcp_client, name, stub)
    if pump:
        monkeypatch.setattr(hosted_loop, "complete", _through_the_pump)
    server = ServerSettings(
        store="memory://", mcp_allow=(hosted_inproc.MCP_URL,), timeouts=Timeouts(idle=0.2, keepalive=0.05)
    )
    settings = Settings(server=server, routes=(Route(upstream=_URL),))
    client = UpstreamClient(settings.server.timeouts, settings.server.retries, transport=_Rounds(rounds))
    app = create_app(settings, upstream=client)
    if store_down:
        store = app_state(app).turns.store
        assert store is not None
        backend = store.backend

        async def down(*_: object, **__: object) -> None:
            raise StoreUnavailable("The response store is unavailable; try again later.")

        monkeypatch.setattr(backend, "set", down)
    body = json.loads(hosted_inproc.body(True, False))
    answers = []
    for kept in (False, True):
        payload = json.dumps({**body, "store": kept}).encode()
        answers.append(await hosted_inproc.answer(app, payload))
    return answers


@pytest.mark.parametrize("rounds", CASES.values(), ids=CASES.keys())
async def test_a_whole_round_ends_as_the_pump_ends_it(
    monkeypatch: pytest.MonkeyPatch, rounds: dict[int, tuple[str, str]]
) -> None:
    whole = await _answer(monkeypatch, rounds, pump=False, store_down=False)
    pumped = await _answer(monkeypatch, rounds, pump=True, store_down=False)
    assert whole == pumped
    status, data = whole[0]
    if any(body != "gzip" for body, _ in rounds.values()):
        assert status >= 500 and b'"error"' in data, data[:300]
    else:
        assert status == 200 and hosted_inproc.OUTPUT.encode() in data


async def test_a_store_failing_at_the_end_is_handled_as_the_pump_handles_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warned: list[str] = []
    # the pump's logger and the loop's are the "shim" logger
    monkeypatch.setattr(logging.getLogger("shim"), "warning", lambda *args: warned.append(args[0] % args[1:]))
    whole = await _answer(monkeypatch, {}, pump=False, store_down=True)
    logged, warned[:] = [*warned], []
    pumped = await _answer(monkeypatch, {}, pump=True, store_down=True)
    assert whole == pumped
    assert (
        logged
        == warned
        == ["a finished answer could not be stored: The response store is unavailable; try again later."]
    )


async def test_a_store_failing_at_the_end_is_a_503_as_for_a_plain_whole_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hosted JSON answer the store could not keep is not handed out with an id nobody can
    retrieve: 503 ``store_unavailable`` in the envelope, as tests/server/test_store_on_finish.py
    holds a plain whole answer to; with ``store: false`` nothing is saved, so nothing fails."""
    monkeypatch.setattr(logging.getLogger("shim"), "warning", lambda *args: None)
    (unkept_status, unkept), (kept_status, kept) = await _answer(monkeypatch, {}, pump=False, store_down=True)
    assert unkept_status == 200 and hosted_inproc.OUTPUT.encode() in unkept
    assert kept_status == 503, kept[:300]
    assert json.loads(kept)["error"]["code"] == "store_unavailable"

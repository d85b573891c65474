"""``http/disconnect.unless_client_leaves``: a JSON turn whose client hangs up is cancelled.

The end-to-end proof against the real model (its log shows it stopped) is
``tests/e2e/test_upstream_stops.py::test_client_hanging_up_on_an_unstreamed_request_stops_the_model``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from litestar import Request

from shim.http.disconnect import unless_client_leaves


class _Receive:
    """An ASGI receive channel after the body: silent until ``leave()``."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def __call__(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}


def _request(receive: _Receive) -> Request[Any, Any, Any]:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    return Request(cast(Any, scope), cast(Any, receive))


async def test_the_answer_comes_back_while_the_client_stays() -> None:
    async def work() -> str:
        await asyncio.sleep(0)
        return "answer"

    assert await unless_client_leaves(_request(_Receive()), work()) == "answer"


async def test_the_turn_is_cancelled_when_the_client_leaves() -> None:
    receive = _Receive()
    cancelled = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.sleep(60)  # an upstream generating for a long time
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async def leave_soon() -> None:
        await asyncio.sleep(0.05)
        receive.gone.set()

    leaving = asyncio.ensure_future(leave_soon())
    assert await asyncio.wait_for(unless_client_leaves(_request(receive), work()), 5) is None
    await leaving
    assert cancelled.is_set()


async def test_the_turns_own_error_still_reaches_the_client() -> None:
    async def work() -> str:
        raise ValueError("upstream said no")

    with pytest.raises(ValueError, match="upstream said no"):
        await unless_client_leaves(_request(_Receive()), work())

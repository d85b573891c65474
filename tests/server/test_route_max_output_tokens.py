"""A route's ``max_output_tokens``: the limit for requests that send none.

Codex never sends a limit, and a llama.cpp server then generates until its context is full (the
real Codex test in tests/clients needs this). A client's own limit always wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.settings import Route
from tests.server.harness import UPSTREAM_URL, Shim

CASES = [
    # (route default, client's limit, limit sent upstream, status)
    pytest.param(5, None, 5, "incomplete", id="route-default-applies"),
    pytest.param(5, 400, 400, "completed", id="client-limit-wins"),
    pytest.param(None, None, None, "completed", id="no-default-no-limit"),
]


@pytest.mark.parametrize(("default", "client_limit", "sent", "status"), CASES)
async def test_route_max_output_tokens(
    make_shim: Callable[..., Shim],
    connect: Callable[[Shim], httpx.AsyncClient],
    default: int | None,
    client_limit: int | None,
    sent: int | None,
    status: str,
) -> None:
    shim = make_shim(routes=(Route(upstream=UPSTREAM_URL, max_output_tokens=default),))
    body: dict[str, Any] = {"model": "m", "input": "Hello"}
    if client_limit is not None:
        body["max_output_tokens"] = client_limit
    resp = await connect(shim).post("/v1/responses", json=body)
    assert resp.status_code == 200, resp.text
    (upstream,) = shim.upstream.bodies
    assert upstream.get("max_completion_tokens") == sent
    payload = resp.json()
    assert payload["status"] == status
    assert payload["max_output_tokens"] == sent

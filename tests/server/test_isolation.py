"""Two credentials: every way of reaching another caller's response looks exactly like a missing id
(same status, same body apart from the id), and leaves the owner's response untouched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.http.state import app_state
from tests.server.harness import Shim
from tests.server.test_background import Gate, poll

Connect = Callable[[Shim], httpx.AsyncClient]
MakeShim = Callable[..., Shim]
ALICE = {"authorization": "Bearer sk-alice"}
MALLORY = {"authorization": "Bearer sk-mallory"}
MISSING = "resp_" + "0" * 48

Attempt = Callable[[httpx.AsyncClient, str], Any]

ATTEMPTS: dict[str, Attempt] = {
    "get": lambda c, i: c.get(f"/v1/responses/{i}", headers=MALLORY),
    "delete": lambda c, i: c.delete(f"/v1/responses/{i}", headers=MALLORY),
    "input_items": lambda c, i: c.get(f"/v1/responses/{i}/input_items", headers=MALLORY),
    "input_items_paged": lambda c, i: c.get(
        f"/v1/responses/{i}/input_items", params={"limit": 1, "order": "asc"}, headers=MALLORY
    ),
    "cancel": lambda c, i: c.post(f"/v1/responses/{i}/cancel", headers=MALLORY),
    "previous_response_id": lambda c, i: c.post(
        "/v1/responses", json={"model": "m", "input": "x", "previous_response_id": i}, headers=MALLORY
    ),
    "previous_response_id_sse": lambda c, i: c.post(
        "/v1/responses",
        json={"model": "m", "input": "x", "previous_response_id": i, "stream": True},
        headers=MALLORY,
    ),
    "previous_response_id_background": lambda c, i: c.post(
        "/v1/responses",
        json={"model": "m", "input": "x", "previous_response_id": i, "background": True},
        headers=MALLORY,
    ),
}


@pytest.mark.parametrize("background", [False, True], ids=["finished", "running-background"])
@pytest.mark.parametrize("attempt", list(ATTEMPTS))
async def test_cross_access_looks_like_a_missing_id(
    make_shim: MakeShim, connect: Connect, attempt: str, background: bool
) -> None:
    gate = Gate()
    shim = make_shim(target=gate)
    app_state(shim.app).background.poll = 0.01
    client = connect(shim)
    if not background:
        gate.open()
    created = await client.post(
        "/v1/responses", json={"model": "m", "input": "secret", "background": background}, headers=ALICE
    )
    owned = created.json()["id"]
    if background:
        await poll(client, owned, {"in_progress"}, ALICE)
    before = len(shim.upstream.requests)

    foreign = await ATTEMPTS[attempt](client, owned)
    missing = await ATTEMPTS[attempt](client, MISSING)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.headers["content-type"] == missing.headers["content-type"]
    assert foreign.text.replace(owned, MISSING) == missing.text
    assert len(shim.upstream.requests) == before, "nothing reached the upstream"

    mine = await client.get(f"/v1/responses/{owned}", headers=ALICE)
    assert mine.status_code == 200, "the owner's response is untouched"
    assert mine.json()["status"] == ("in_progress" if background else "completed")
    if background:
        gate.open()
        assert (await poll(client, owned, headers=ALICE))["status"] == "completed"


async def test_the_same_credential_sees_its_own(client: httpx.AsyncClient) -> None:
    """The control for the test above: with the owner's credential every attempt succeeds."""
    created = (await client.post("/v1/responses", json={"model": "m", "input": "mine"}, headers=ALICE)).json()
    for path in (f"/v1/responses/{created['id']}", f"/v1/responses/{created['id']}/input_items"):
        assert (await client.get(path, headers=ALICE)).status_code == 200
    follow = await client.post(
        "/v1/responses",
        json={"model": "m", "input": "more", "previous_response_id": created["id"]},
        headers=ALICE,
    )
    assert follow.status_code == 200
    assert (await client.delete(f"/v1/responses/{created['id']}", headers=ALICE)).status_code == 200

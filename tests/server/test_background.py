"""``background: true``: ``queued`` at once, polled by ``GET``, cancelled by ``POST .../cancel``, with
the state in the store, so another replica sharing the store can poll and cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.http.state import app_state
from shim.store.memory_backend import MemoryBackend
from shim.turns.background import BackgroundRunner
from tests.checks.oracle import validate_resource
from tests.server.harness import Receive, Scope, Send, Shim, status_app
from tests.support import scripted_chat

Connect = Callable[[Shim], httpx.AsyncClient]
MakeShim = Callable[..., Shim]
FINAL = {"completed", "incomplete", "failed", "cancelled"}


class Gate:
    """The scripted upstream, held until ``open()``; counts the requests that reached it and
    those the shim gave up on (cancelled while held)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.arrived = 0
        self.abandoned = 0

    def open(self) -> None:
        self.event.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.arrived += 1
        try:
            await self.event.wait()
        except asyncio.CancelledError:
            self.abandoned += 1
            raise
        await scripted_chat.app(scope, receive, send)


def runner_of(shim: Shim) -> BackgroundRunner:
    runner: BackgroundRunner = app_state(shim.app).background
    runner.poll = 0.01
    return runner


async def start(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/responses", json={"model": "m", "input": "Hello", "background": True, **body}
    )
    assert response.status_code == 200, response.text
    validate_resource(response.content)
    data: dict[str, Any] = response.json()
    return data


async def poll(
    client: httpx.AsyncClient,
    response_id: str,
    until: set[str] = FINAL,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    async with asyncio.timeout(5.0):
        while True:
            response = await client.get(f"/v1/responses/{response_id}", headers=headers)
            assert response.status_code == 200, response.text
            data: dict[str, Any] = response.json()
            if data["status"] in until:
                validate_resource(response.content)
                return data
            await asyncio.sleep(0.005)


async def settle(runner: BackgroundRunner) -> None:
    async with asyncio.timeout(5.0):
        while runner.active:
            await asyncio.sleep(0.005)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def gated(make_shim: MakeShim, gate: Gate) -> Shim:
    return make_shim(target=gate)


async def test_queued_then_in_progress_then_completed(gated: Shim, gate: Gate, connect: Connect) -> None:
    client = connect(gated)
    runner_of(gated)
    queued = await start(client, metadata={"job": "1"})
    assert queued["status"] == "queued" and queued["background"] is True
    assert queued["output"] == [] and queued["metadata"] == {"job": "1"}
    running = await poll(client, queued["id"], {"in_progress"})
    assert gate.arrived == 1
    gate.open()
    done = await poll(client, queued["id"])
    assert done["status"] == "completed" and done["background"] is True
    assert done["output"][0]["content"][0]["text"].startswith(scripted_chat.ANSWER)
    assert {k: v for k, v in running.items() if k != "status"} == {
        k: v for k, v in queued.items() if k != "status"
    }
    follow = await client.post(
        "/v1/responses", json={"model": "m", "input": "more", "previous_response_id": done["id"]}
    )
    assert follow.status_code == 200, "a finished background response continues like any other"
    assert [m["role"] for m in gated.upstream.bodies[-1]["messages"]] == ["user", "assistant", "user"]


@pytest.mark.parametrize(
    ("target", "body", "status", "code"),
    [
        (status_app(500, {"error": {"message": "boom"}}), {}, "failed", "upstream_error"),
        (scripted_chat.app, {"max_output_tokens": 3}, "incomplete", None),
    ],
    ids=["failed", "incomplete"],
)
async def test_final_statuses(
    make_shim: MakeShim, connect: Connect, target: Any, body: dict[str, Any], status: str, code: str | None
) -> None:
    shim = make_shim(target=target)
    client = connect(shim)
    queued = await start(client, **body)
    done = await poll(client, queued["id"])
    assert done["status"] == status
    assert (done["error"] or {}).get("code") == code


async def test_cancel(gated: Shim, gate: Gate, connect: Connect) -> None:
    client = connect(gated)
    runner = runner_of(gated)
    queued = await start(client)
    await poll(client, queued["id"], {"in_progress"})
    response = await client.post(f"/v1/responses/{queued['id']}/cancel")
    assert response.status_code == 200
    validate_resource(response.content)
    assert response.json()["status"] == "cancelled"
    await settle(runner)
    assert gate.abandoned == 1, "the upstream request was cut short"
    assert (await poll(client, queued["id"]))["status"] == "cancelled"
    again = await client.post(f"/v1/responses/{queued['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled", "cancel is idempotent"


@pytest.mark.parametrize("background", [True, False], ids=["finished-background", "not-background"])
async def test_cancel_what_cannot_be_cancelled(client: httpx.AsyncClient, background: bool) -> None:
    created = await client.post("/v1/responses", json={"model": "m", "input": "hi", "background": background})
    if background:
        await poll(client, created.json()["id"])
    response = await client.post(f"/v1/responses/{created.json()['id']}/cancel")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "response_not_cancellable" and error["type"] == "invalid_request_error"


async def test_delete_stops_a_running_response(gated: Shim, gate: Gate, connect: Connect) -> None:
    client = connect(gated)
    runner = runner_of(gated)
    queued = await start(client)
    await poll(client, queued["id"], {"in_progress"})
    assert (await client.delete(f"/v1/responses/{queued['id']}")).status_code == 200
    await settle(runner)
    assert gate.abandoned == 1
    assert (await client.get(f"/v1/responses/{queued['id']}")).status_code == 404, "never resurrected"


async def test_continuing_a_pending_response_is_refused(gated: Shim, gate: Gate, connect: Connect) -> None:
    client = connect(gated)
    queued = await start(client)
    response = await client.post(
        "/v1/responses", json={"model": "m", "input": "more", "previous_response_id": queued["id"]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "previous_response_pending"
    gate.open()
    await poll(client, queued["id"])


@pytest.mark.parametrize(
    ("body", "param"),
    [({"stream": True}, "stream"), ({"store": False}, "store")],
    ids=["with-stream", "store-false"],
)
async def test_refused_combinations(
    client: httpx.AsyncClient, shim: Shim, body: dict[str, Any], param: str
) -> None:
    response = await client.post(
        "/v1/responses", json={"model": "m", "input": "hi", "background": True, **body}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert shim.upstream.requests == [], "nothing ran"


async def test_shutdown_marks_running_responses_failed(gated: Shim, connect: Connect) -> None:
    client = connect(gated)
    runner = runner_of(gated)
    queued = await start(client)
    await poll(client, queued["id"], {"in_progress"})
    await runner.aclose()
    done = await poll(client, queued["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "server_shutdown"


# --------------------------------------------------------------------------- two replicas, one store


@pytest.fixture
def replicas(make_shim: MakeShim, gate: Gate) -> tuple[Shim, Shim]:
    """Two shims sharing one store (as with Redis); ``a`` reaches the gated upstream."""
    a, b = make_shim(target=gate), make_shim()
    shared = MemoryBackend()
    app_state(a.app).turns.store.backend = shared
    app_state(b.app).turns.store.backend = shared
    return a, b


@pytest.mark.parametrize("action", ["cancel", "delete"])
async def test_another_replica_polls_and_stops(
    replicas: tuple[Shim, Shim], gate: Gate, connect: Connect, action: str
) -> None:
    a, b = replicas
    runner = runner_of(a)
    on_a, on_b = connect(a), connect(b)
    queued = await start(on_a)
    assert (await poll(on_b, queued["id"], {"in_progress"}))["id"] == queued["id"]
    if action == "cancel":
        response = await on_b.post(f"/v1/responses/{queued['id']}/cancel")
        assert response.json()["status"] == "cancelled"
    else:
        assert (await on_b.delete(f"/v1/responses/{queued['id']}")).status_code == 200
    await settle(runner)  # replica a saw the record change at its next poll and stopped
    assert gate.abandoned == 1
    after = await on_a.get(f"/v1/responses/{queued['id']}")
    if action == "cancel":
        assert after.json()["status"] == "cancelled"
    else:
        assert after.status_code == 404


async def test_another_replica_sees_completion(
    replicas: tuple[Shim, Shim], gate: Gate, connect: Connect
) -> None:
    a, b = replicas
    queued = await start(connect(a))
    gate.open()
    done = await poll(connect(b), queued["id"])
    assert done["status"] == "completed"


class FlakyGets:
    """A backend whose reads and compare-and-sets fail while ``failing`` is set (a store hiccup)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failing = False
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, key: str) -> bytes | None:
        if self.failing:
            self.failed += 1
            raise ConnectionError("store unreachable")
        result: bytes | None = await self.inner.get(key)
        return result

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        if self.failing:  # the lease renewal
            self.failed += 1
            raise ConnectionError("store unreachable")
        done: bool = await self.inner.compare_and_set(key, expected, value, ttl)
        return done


async def test_a_store_hiccup_while_polling_does_not_stop_the_response(
    gated: Shim, gate: Gate, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(gated)
    runner_of(gated)
    store = app_state(gated.app).turns.store
    flaky = store.backend = FlakyGets(store.backend)
    queued = await start(client)
    await poll(client, queued["id"], {"in_progress"})
    flaky.failing = True
    async with asyncio.timeout(5.0):
        while flaky.failed < 3:
            await asyncio.sleep(0.005)
    flaky.failing = False
    gate.open()
    assert (await poll(client, queued["id"]))["status"] == "completed"
    assert "cannot renew its lease" in caplog.text

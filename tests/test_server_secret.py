"""The server secret: created once for every worker, rotated without losing state, never short.

- many processes racing on a fresh data directory all end with the same secret, none crashes;
- after ``SHIM_SECRET`` changes, with the old one in ``SHIM_PREVIOUS_SECRETS``, responses stored
  and items sealed under the old one still retrieve and open; new ones use the new secret;
- a secret shorter than the minimum is refused at start-up with a one-line error.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.cli import main
from shim.http.app import app_state, create_app
from shim.settings import load_settings
from shim.store.repository import scope_of
from shim.upstream.client import UpstreamClient
from tests.server.harness import reasoning_app
from tests.support.scripted_responses import ScriptedResponses

OLD = "old-secret-0123456789abcdef0123456789abcdef"
NEW = "new-secret-fedcba9876543210fedcba9876543210"
KEY = {"authorization": "Bearer sk-alice"}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SHIM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SHIM_DATA_DIR", str(tmp_path / "data"))


# --------------------------------------------------------------------------- finding 6: the race


PROBE = "sk-probe"


def _new_app_scope() -> str:
    """What a worker does at start: build the app (which reads or makes the secret), then the
    scope it would store the probe caller's records under."""
    app = create_app(load_settings(upstream="http://127.0.0.1:9/v1", store="memory://"))
    scope: str = app_state(app).turns.scope(PROBE)
    return scope


def _slow(urandom: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """A slow disk or a starved entropy pool at first boot: a wide window for the race."""

    def slow_urandom(n: int) -> bytes:
        time.sleep(0.05)
        return urandom(n)

    return slow_urandom


def _racer(data_dir: str, start: Any, out: Any, slow: bool) -> None:
    os.environ["SHIM_DATA_DIR"] = data_dir
    if slow:
        os.urandom = _slow(os.urandom)
    start.wait()
    try:
        out.put(("ok", _new_app_scope()))
    except BaseException as exc:  # a crash is what the test looks for
        out.put(("crash", repr(exc)))


def _one_secret_for_all(data_dir: str, results: list[tuple[str, str]]) -> None:
    assert [kind for kind, _ in results] == ["ok"] * len(results), results
    scopes = {value for _, value in results}
    assert len(scopes) == 1, f"{len(scopes)} different secrets"
    secret = (Path(data_dir) / "secret").read_bytes()
    assert len(secret) >= 32 and scopes == {scope_of(secret, PROBE)}
    assert (Path(data_dir) / "secret").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in Path(data_dir).iterdir()) == ["secret"], "no temporary files left"


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow-entropy"])
def test_workers_racing_on_a_fresh_data_dir_share_one_secret(tmp_path: Path, slow: bool) -> None:
    data_dir = str(tmp_path / "fresh")
    context = multiprocessing.get_context("fork")  # as uvicorn's workers: the app module is loaded
    workers = 12
    start, out = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_racer, args=(data_dir, start, out, slow)) for _ in range(workers)]
    for p in processes:
        p.start()
    results = [out.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=60)
    _one_secret_for_all(data_dir, results)


def test_threads_racing_on_a_fresh_data_dir_share_one_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = str(tmp_path / "fresh")
    monkeypatch.setenv("SHIM_DATA_DIR", data_dir)
    monkeypatch.setattr(os, "urandom", _slow(os.urandom))
    start = threading.Barrier(12)
    results: list[tuple[str, str]] = []

    def race() -> None:
        start.wait()
        try:
            results.append(("ok", _new_app_scope()))
        except BaseException as exc:
            results.append(("crash", repr(exc)))

    threads = [threading.Thread(target=race) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _one_secret_for_all(data_dir, results)


# --------------------------------------------------------------------------- finding 15: rotation

Apps = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def shim_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Apps]:
    """``shim_with(secret, previous)``: an app as ``shim serve`` builds it from the environment,
    over one diskcache store shared by every app of the test and a DeepSeek-style upstream (or
    ``responses=``, a scripted Responses upstream)."""
    opened: list[tuple[httpx.AsyncClient, Any]] = []

    def build(
        secret: str, previous: str | None = None, responses: ScriptedResponses | None = None
    ) -> httpx.AsyncClient:
        monkeypatch.setenv("SHIM_SECRET", secret)
        if previous is None:
            monkeypatch.delenv("SHIM_PREVIOUS_SECRETS", raising=False)
        else:
            monkeypatch.setenv("SHIM_PREVIOUS_SECRETS", previous)
        store = f"diskcache://{tmp_path / 'store'}"
        if responses is None:
            settings = load_settings(upstream="http://upstream.test/v1", dialect="deepseek", store=store)
            transport = httpx.ASGITransport(reasoning_app(["Step one. ", "Step two."], ["Forty-two."]))
        else:  # a Responses upstream: Chat clients' reasoning is remembered by the shim
            settings = load_settings(upstream="http://upstream.test/v1", kind="responses", store=store)
            transport = httpx.ASGITransport(responses)
        upstream = UpstreamClient(settings.server.timeouts, 0, transport=transport)
        app = create_app(settings, upstream=upstream)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://shim")
        opened.append((client, app))
        return client

    yield build
    for client, app in opened:
        await client.aclose()
        await app_state(app).turns.upstream.aclose()
        store = app_state(app).turns.store
        assert store is not None
        await store.backend.aclose()


async def _sealed_reasoning(client: httpx.AsyncClient) -> dict[str, Any]:
    body = {"model": "m", "input": "Why?", "store": False, "include": ["reasoning.encrypted_content"]}
    answer = (await client.post("/v1/responses", json=body, headers=KEY)).json()
    (item,) = [i for i in answer["output"] if i["type"] == "reasoning"]
    assert item["encrypted_content"].startswith("shim1.")
    return {"type": "reasoning", "summary": [], "encrypted_content": item["encrypted_content"]}


async def _replay(client: httpx.AsyncClient, reasoning: dict[str, Any]) -> httpx.Response:
    items = [
        {"role": "user", "content": "Why?"},
        reasoning,
        {"role": "assistant", "content": "Forty-two."},
        {"role": "user", "content": "And then?"},
    ]
    return await client.post(
        "/v1/responses", json={"model": "m", "input": items, "store": False}, headers=KEY
    )


async def test_rotation_keeps_stored_responses_and_sealed_items(shim_with: Apps) -> None:
    before = shim_with(OLD)
    stored = (
        await before.post("/v1/responses", json={"model": "m", "input": "Remember me."}, headers=KEY)
    ).json()
    sealed = await _sealed_reasoning(before)

    # Rotated without the old secret: everything made before is lost (the failure rotation avoids).
    forgot = shim_with(NEW)
    assert (await forgot.get(f"/v1/responses/{stored['id']}", headers=KEY)).status_code == 404
    assert (await _replay(forgot, sealed)).json()["error"]["code"] == "invalid_encrypted_content"

    rotated = shim_with(NEW, previous=f"{OLD}, some-even-older-short-one")
    got = await rotated.get(f"/v1/responses/{stored['id']}", headers=KEY)
    assert got.status_code == 200 and got.json()["id"] == stored["id"]
    items = await rotated.get(f"/v1/responses/{stored['id']}/input_items", headers=KEY)
    assert items.status_code == 200
    follow = {"model": "m", "input": "Again.", "previous_response_id": stored["id"]}
    chained = await rotated.post("/v1/responses", json=follow, headers=KEY)
    assert chained.status_code == 200, chained.text
    assert (await _replay(rotated, sealed)).status_code == 200
    # Still only its owner's: another key sees nothing under any secret.
    other = {"authorization": "Bearer sk-mallory"}
    assert (await rotated.get(f"/v1/responses/{stored['id']}", headers=other)).status_code == 404

    # What the rotated app writes and seals uses the new secret alone.
    fresh = await _sealed_reasoning(rotated)
    only_new = shim_with(NEW)
    assert (await _replay(only_new, fresh)).status_code == 200
    assert (await only_new.get(f"/v1/responses/{chained.json()['id']}", headers=KEY)).status_code == 200
    assert (await rotated.delete(f"/v1/responses/{stored['id']}", headers=KEY)).status_code == 200
    assert (await shim_with(OLD).get(f"/v1/responses/{stored['id']}", headers=KEY)).status_code == 404


async def test_rotation_keeps_conversations(shim_with: Apps) -> None:
    """A conversation made under the old secret is found, continued and changed after a rotation
    that keeps the old secret, and is gone for an app that dropped it."""
    before = shim_with(OLD)
    made = await before.post(
        "/v1/conversations", json={"items": [{"role": "user", "content": "Hi."}]}, headers=KEY
    )
    assert made.status_code == 200, made.text
    cid = made.json()["id"]
    turn = {"model": "m", "input": "First.", "conversation": cid}
    assert (await before.post("/v1/responses", json=turn, headers=KEY)).status_code == 200

    assert (await shim_with(NEW).get(f"/v1/conversations/{cid}", headers=KEY)).status_code == 404

    rotated = shim_with(NEW, previous=OLD)
    assert (await rotated.get(f"/v1/conversations/{cid}", headers=KEY)).status_code == 200
    listed = (await rotated.get(f"/v1/conversations/{cid}/items", headers=KEY)).json()["data"]
    turn = {"model": "m", "input": "Second.", "conversation": cid}
    answer = await rotated.post("/v1/responses", json=turn, headers=KEY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["conversation"] == {"id": cid}
    after = (await rotated.get(f"/v1/conversations/{cid}/items", headers=KEY)).json()["data"]
    assert len(after) == len(listed) + 1 + len(answer.json()["output"])  # appended where it lives
    other = {"authorization": "Bearer sk-mallory"}
    assert (await rotated.get(f"/v1/conversations/{cid}", headers=other)).status_code == 404
    updated = await rotated.post(f"/v1/conversations/{cid}", json={"metadata": {"k": "v"}}, headers=KEY)
    assert updated.status_code == 200 and updated.json()["metadata"] == {"k": "v"}
    first_item = after[-1]["id"]
    gone = await rotated.delete(f"/v1/conversations/{cid}/items/{first_item}", headers=KEY)
    assert gone.status_code == 200, gone.text
    assert (await rotated.delete(f"/v1/conversations/{cid}", headers=KEY)).status_code == 200
    assert (await shim_with(OLD).get(f"/v1/conversations/{cid}", headers=KEY)).status_code == 404


async def test_rotation_keeps_remembered_chat_reasoning(shim_with: Apps) -> None:
    """A Chat client over a Responses upstream: the reasoning the shim remembered for an assistant
    turn before the rotation is still sent back with that turn after it."""
    upstream = ScriptedResponses(reasoning=["The plan, step by step."])
    first = [{"role": "user", "content": "Plan it."}]
    answer = await shim_with(OLD, responses=upstream).post(
        "/v1/chat/completions", json={"model": "m", "messages": first}, headers=KEY
    )
    said = answer.json()["choices"][0]["message"]["content"]
    messages = [*first, {"role": "assistant", "content": said}, {"role": "user", "content": "More."}]
    follow = {"model": "m", "messages": messages}

    async def sent_after(client: httpx.AsyncClient) -> list[str]:
        assert (await client.post("/v1/chat/completions", json=follow, headers=KEY)).status_code == 200
        return [item["type"] for item in upstream.requests[-1]["input"]]

    assert await sent_after(shim_with(NEW, responses=upstream)) == ["message"] * 3  # forgotten
    rotated = shim_with(NEW, previous=OLD, responses=upstream)
    assert await sent_after(rotated) == ["message", "reasoning", "message", "message"]


# --------------------------------------------------------------------------- finding 15: length


@pytest.mark.parametrize(
    ("env", "config"),
    [
        pytest.param({"SHIM_SECRET": "sekrit-value"}, "", id="environment"),
        pytest.param({"SHIM_SECRET": "x" * 31}, "", id="one-byte-short"),
        pytest.param({}, '[server]\nsecret = "hunter2"\n', id="config-file"),
    ],
)
def test_a_short_secret_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    config: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = ["serve", "--upstream", "http://127.0.0.1:9/v1"]
    if config:
        (tmp_path / "shim.toml").write_text(config)
        argv += ["--config", str(tmp_path / "shim.toml")]
    with pytest.raises(ValueError, match="at least 32 bytes"):
        load_settings(config=tmp_path / "shim.toml" if config else None, upstream="http://127.0.0.1:9/v1")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "SHIM_SECRET" in err and "at least 32 bytes" in err
    assert all(secret not in err for secret in ("hunter2", "sekrit-value", "x" * 31))


def test_a_short_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret").write_bytes(b"tiny")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        create_app(load_settings(upstream="http://127.0.0.1:9/v1", store="memory://"))


def test_a_32_byte_secret_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIM_SECRET", "x" * 32)
    monkeypatch.setenv("SHIM_PREVIOUS_SECRETS", "a,b")  # previous ones may be short: rotating away
    server = load_settings(upstream="http://127.0.0.1:9/v1").server
    assert (server.secret, server.previous_secrets) == ("x" * 32, ("a", "b"))

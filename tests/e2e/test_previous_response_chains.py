"""``previous_response_id`` chains over the real llama.cpp upstream, driven by the openai SDK.

Every chain is at least three turns deep and runs over HTTP (JSON and SSE) and WebSocket
(``client.responses.connect()``), against a real ``python -m shim serve`` on each store backend:
memory, diskcache and a real ``redis-server`` (skipped locally when missing, required in CI).

What a chain proves is checked where it happens: a recording proxy between the shim and llama
(``tests/support/recording_proxy.py``) keeps every upstream request, so the tests assert the exact
messages the model received — earlier turns' inputs and the model's own earlier answers, and no
inherited ``instructions`` — instead of trusting a 270M model to recall "My name is Ada". The
model's side is checked too: a continued turn costs as many prompt tokens as the same
conversation sent whole. Answers are short (``max_output_tokens``) and greedy (temperature 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shim.cli.embedded import DIALECT
from tests.e2e.conftest import MODEL, ShimServer, _start_shim
from tests.store.conftest import (
    redis_url,  # noqa: F401 (the fixture, for the redis store)
    store_url,
)
from tests.support.recording_proxy import RecordingProxy

openai = pytest.importorskip("openai")

STORES = ("memory", "diskcache", "redis")
SETTINGS: dict[str, Any] = {"model": MODEL, "temperature": 0, "max_output_tokens": 8}
FACT, PLACE, QUESTION = "My name is Ada.", "I live in Paris.", "What is my name?"
TERMINAL = ("response.completed", "response.incomplete", "response.failed")

Message = tuple[str, str]  # (role, text) of one upstream Chat message


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy(llama_url: str) -> Iterator[RecordingProxy]:
    with RecordingProxy(llama_url) as recording:
        yield recording


@pytest.fixture(scope="module", params=STORES)
def chain_shim(
    request: pytest.FixtureRequest, proxy: RecordingProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShimServer]:
    """``shim serve`` over the recording proxy, storing in the parametrised backend."""
    workdir = tmp_path_factory.mktemp(f"chain-{request.param}")
    store = store_url(request.param, workdir, request)
    server = _start_shim(proxy.url, DIALECT, workdir, ("--store", store))
    yield server
    server.stop()


@pytest.fixture
def sdk(chain_shim: ShimServer, proxy: RecordingProxy) -> Iterator[Any]:
    proxy.clear()
    client = openai.OpenAI(base_url=chain_shim.base_url, api_key="sk-chains", max_retries=0, timeout=120)
    yield client
    client.close()


# --- helpers ----------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content)
    return str(content or "")


def sent(proxy: RecordingProxy) -> list[list[Message]]:
    """Each upstream request's conversation, oldest request first; then forget them."""
    turns = [[(m["role"], _text(m.get("content"))) for m in body["messages"]] for body in proxy.bodies]
    proxy.clear()
    return turns


def expected(turns: list[tuple[str, Any]], new_input: str, instructions: str | None = None) -> list[Message]:
    """The conversation a continued turn must send: prior (input, response) pairs, then the new
    input, with only this turn's own instructions as the system message."""
    system = [("system", instructions)] if instructions else []
    history = [m for said, answer in turns for m in (("user", said), ("assistant", answer.output_text))]
    return [*system, *history, ("user", new_input)]


def create_streamed(sdk: Any, **body: Any) -> Any:
    final = None
    with sdk.responses.create(**SETTINGS, **body, stream=True) as stream:
        for event in stream:
            if event.type in TERMINAL:
                final = event.response
    assert final is not None, "the stream ended without a terminal event"
    return final


def ws_turn(connection: Any, **body: Any) -> Any:
    """One WebSocket turn: the terminal response, or the ``error`` event."""
    connection.response.create(**SETTINGS, **body)
    for event in connection:
        if event.type in (*TERMINAL, "error"):
            return event.response if event.type != "error" else event
    raise AssertionError("the connection closed mid-turn")


def ws_error_code(event: Any) -> str:
    assert event.type == "error", event
    data = event.model_dump()
    return str((data.get("error") or {}).get("code") or data.get("code"))


def error_code(exc: pytest.ExceptionInfo[Any]) -> str:
    return str(exc.value.body.get("code") if isinstance(exc.value.body, dict) else exc.value.body)


def same_resource(left: Any, right: Any) -> None:
    assert left.model_dump(mode="json") == right.model_dump(mode="json")


# --- HTTP -------------------------------------------------------------------------------------


def test_http_chain_sends_the_whole_conversation(sdk: Any, proxy: RecordingProxy) -> None:
    first = sdk.responses.create(**SETTINGS, input=FACT, instructions="Answer in one word.")
    second = sdk.responses.create(**SETTINGS, input=PLACE, previous_response_id=first.id)
    third = sdk.responses.create(
        **SETTINGS, input=QUESTION, previous_response_id=second.id, instructions="Be brief."
    )
    one, two, three = sent(proxy)
    assert one == expected([], FACT, "Answer in one word.")
    assert two == expected([(FACT, first)], PLACE), "instructions are not inherited"
    assert three == expected([(FACT, first), (PLACE, second)], QUESTION, "Be brief.")

    for made in (first, second, third):
        same_resource(sdk.responses.retrieve(made.id), made)
    assert (second.previous_response_id, third.previous_response_id) == (first.id, second.id)
    assert second.instructions is None and third.instructions == "Be brief."
    items = list(sdk.responses.input_items.list(third.id))
    assert [_text([p.model_dump() for p in i.content]) for i in items] == [QUESTION], "its own input only"

    # The model's side: the continued turn's prompt is exactly the conversation sent whole.
    whole = [
        {"role": "user", "content": FACT},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": PLACE},
        {"role": "assistant", "content": second.output_text},
        {"role": "user", "content": QUESTION},
    ]
    stateless = sdk.responses.create(**SETTINGS, input=whole, instructions="Be brief.", store=False)
    assert sent(proxy) == [three]
    assert stateless.usage.input_tokens == third.usage.input_tokens
    alone = sdk.responses.create(**SETTINGS, input=QUESTION, store=False)
    assert alone.usage.input_tokens < third.usage.input_tokens


def test_http_streamed_chain_is_stored_when_it_ends(sdk: Any, proxy: RecordingProxy) -> None:
    first = create_streamed(sdk, input=FACT, instructions="Answer in one word.")
    second = create_streamed(sdk, input=PLACE, previous_response_id=first.id)
    # The SDK's accumulating helper rebuilds the text from the deltas, checking every index (its
    # get_final_response() wants `response.completed`; 8 tokens end `incomplete`).
    snapshot, third = "", None
    with sdk.responses.stream(**SETTINGS, input=QUESTION, previous_response_id=second.id) as stream:
        for event in stream:
            snapshot = event.snapshot if event.type == "response.output_text.delta" else snapshot
            third = event.response if event.type in TERMINAL else third
    assert third is not None and snapshot == third.output_text
    assert [body["stream"] for body in proxy.bodies] == [True] * 3
    assert sent(proxy)[1:] == [
        expected([(FACT, first)], PLACE),
        expected([(FACT, first), (PLACE, second)], QUESTION),
    ]
    for made in (first, second, third):
        same_resource(sdk.responses.retrieve(made.id), made)
    fourth = sdk.responses.create(**SETTINGS, input="And where?", previous_response_id=third.id)
    assert sent(proxy) == [expected([(FACT, first), (PLACE, second), (QUESTION, third)], "And where?")]
    assert fourth.previous_response_id == third.id


def test_http_delete_ends_only_that_id(sdk: Any, proxy: RecordingProxy) -> None:
    first = sdk.responses.create(**SETTINGS, input=FACT)
    second = sdk.responses.create(**SETTINGS, input=PLACE, previous_response_id=first.id)
    deleted = sdk.responses.with_raw_response.delete(first.id)
    assert deleted.status_code == 200
    body = deleted.http_response.json()
    assert (body["id"], body["deleted"]) == (first.id, True)
    with pytest.raises(openai.NotFoundError) as gone:
        sdk.responses.retrieve(first.id)
    assert error_code(gone) == "not_found"
    with pytest.raises(openai.NotFoundError) as broken:
        sdk.responses.create(**SETTINGS, input=QUESTION, previous_response_id=first.id)
    assert error_code(broken) == "previous_response_not_found"
    sdk.responses.create(**SETTINGS, input=QUESTION, previous_response_id=second.id)
    assert sent(proxy)[-1] == expected([(FACT, first), (PLACE, second)], QUESTION), (
        "a later record holds the whole history"
    )


def test_http_store_false_is_not_retrievable(sdk: Any) -> None:
    unstored = sdk.responses.create(**SETTINGS, input=FACT, store=False)
    assert unstored.status in ("completed", "incomplete")
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.responses.retrieve(unstored.id)
    assert error_code(missing) == "not_found"
    with pytest.raises(openai.NotFoundError):
        list(sdk.responses.input_items.list(unstored.id))
    with pytest.raises(openai.NotFoundError) as broken:
        sdk.responses.create(**SETTINGS, input=QUESTION, previous_response_id=unstored.id)
    assert error_code(broken) == "previous_response_not_found"


# --- WebSocket --------------------------------------------------------------------------------


def test_websocket_chain_is_stored(sdk: Any, proxy: RecordingProxy) -> None:
    with sdk.responses.connect(max_retries=0) as connection:
        first = ws_turn(connection, input=FACT, instructions="Answer in one word.")
        second = ws_turn(connection, input=PLACE, previous_response_id=first.id)
        third = ws_turn(connection, input=QUESTION, previous_response_id=second.id)
    assert sent(proxy) == [
        expected([], FACT, "Answer in one word."),
        expected([(FACT, first)], PLACE),
        expected([(FACT, first), (PLACE, second)], QUESTION),
    ]
    for made in (first, second, third):
        same_resource(sdk.responses.retrieve(made.id), made)


def test_websocket_store_false_stays_in_the_connection(sdk: Any, proxy: RecordingProxy) -> None:
    with sdk.responses.connect(max_retries=0) as connection:
        first = ws_turn(connection, input=FACT, store=False)
        second = ws_turn(connection, input=PLACE, previous_response_id=first.id, store=False)
        third = ws_turn(connection, input=QUESTION, previous_response_id=second.id, store=False)
        assert third.previous_response_id == second.id
    assert sent(proxy)[1:] == [
        expected([(FACT, first)], PLACE),
        expected([(FACT, first), (PLACE, second)], QUESTION),
    ]
    for local in (first, second, third):
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(local.id)
    with pytest.raises(openai.NotFoundError) as over_http:
        sdk.responses.create(**SETTINGS, input="Again?", previous_response_id=third.id)
    assert error_code(over_http) == "previous_response_not_found"
    with sdk.responses.connect(max_retries=0) as connection:
        other = ws_turn(connection, input="Again?", previous_response_id=third.id)
        assert ws_error_code(other) == "previous_response_not_found"
    assert proxy.bodies == [], "a failed continuation never reaches the upstream"


def test_http_ids_hydrate_over_websocket(sdk: Any, proxy: RecordingProxy) -> None:
    first = sdk.responses.create(**SETTINGS, input=FACT)
    second = create_streamed(sdk, input=PLACE, previous_response_id=first.id)
    sent(proxy)
    with sdk.responses.connect(max_retries=0) as connection:
        third = ws_turn(connection, input=QUESTION, previous_response_id=second.id)
        fourth = ws_turn(connection, input="And where?", previous_response_id=third.id, store=False)
    history = [(FACT, first), (PLACE, second)]
    assert sent(proxy) == [
        expected(history, QUESTION),
        expected([*history, (QUESTION, third)], "And where?"),
    ]
    same_resource(sdk.responses.retrieve(third.id), third)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(fourth.id)
    fifth = sdk.responses.create(**SETTINGS, input="Thanks.", previous_response_id=third.id)
    assert fifth.previous_response_id == third.id
    assert sent(proxy) == [expected([*history, (QUESTION, third)], "Thanks.")]

"""The real ``openai`` SDK on stored responses: retrieve, delete, input_items (with the SDK's own
cursor auto-pagination), a ``previous_response_id`` chain and a background response, in-process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.server.harness import Shim

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2", reason="openai 3.x uses httpx2 for its http_client")

from openai.types.responses import Response  # noqa: E402
from pydantic import TypeAdapter  # noqa: E402

RESPONSE: TypeAdapter[Response] = TypeAdapter(Response)


def strict(response: Any) -> Response:
    """Validate what the SDK received against its own ``Response`` type."""
    return RESPONSE.validate_python(response.model_dump(mode="json", exclude_unset=True, warnings=False))


async def test_chain_retrieve_and_delete(sdk: Any, shim: Shim) -> None:
    first = await sdk.responses.create(model="m", input="one", instructions="Be terse.")
    second = await sdk.responses.create(model="m", input="two", previous_response_id=first.id)
    third = await sdk.responses.create(model="m", input="three", previous_response_id=second.id)
    roles = [m["role"] for m in shim.upstream.bodies[-1]["messages"]]
    assert roles == ["user", "assistant"] * 2 + ["user"], "the chain, without the first instructions"
    got = strict(await sdk.responses.retrieve(third.id))
    assert got.id == third.id and got.previous_response_id == second.id
    assert got.output_text == third.output_text
    await sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(first.id)
    still = await sdk.responses.create(model="m", input="four", previous_response_id=third.id)
    assert still.status == "completed", "later records hold their own history"


async def test_input_items_auto_pagination(sdk: Any) -> None:
    inputs = [{"role": "user", "content": f"message {n}"} for n in range(5)]
    created = await sdk.responses.create(model="m", input=inputs)
    seen = [item async for item in sdk.responses.input_items.list(created.id, limit=2, order="asc")]
    assert [item.content[0].text for item in seen] == [f"message {n}" for n in range(5)]
    assert len({item.id for item in seen}) == 5
    page = await sdk.responses.input_items.list(created.id, limit=2)
    assert page.has_more is True and [i.content[0].text for i in page.data] == ["message 4", "message 3"]


async def test_background_poll_and_cancel_errors(sdk: Any) -> None:
    queued = await sdk.responses.create(model="m", input="Hello", background=True)
    assert queued.status == "queued" and queued.background is True
    async with asyncio.timeout(5.0):
        while (polled := await sdk.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
            await asyncio.sleep(0.01)
    assert strict(polled).status == "completed" and polled.output_text
    with pytest.raises(openai.BadRequestError):
        await sdk.responses.cancel(queued.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.cancel("resp_missing")

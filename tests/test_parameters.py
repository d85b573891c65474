"""``validate_all`` for the parameters both formats name alike (``shim/translate/parameters.py``).

One row per parameter: a value a client might send. For each, every place the table says honours
it does (Responses → Chat request, Chat → Responses request, the echo in the response resource),
and every place it says leaves it out does. Adding a parameter is a table row there and here.
"""

from __future__ import annotations

from typing import Any

import pytest

from shim.core.diagnostics import Diagnostics
from shim.dialects.registry import get_dialect
from shim.translate.chat_request import to_chat_request
from shim.translate.echo import response_template
from shim.translate.parameters import SAME_NAME, SameName
from shim.translate.responses_request import to_responses_request
from shim.wire import chat as c
from shim.wire import responses as r

VALUES: dict[str, Any] = {
    "temperature": 0.3,
    "top_p": 0.9,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "seed": 42,
    "user": "user-7",
    "prompt_cache_key": "cache-1",
    "safety_identifier": "safe-1",
    "stop": ["\n\n"],
    "metadata": {"k": "v"},
    "max_tool_calls": 3,
}
ROWS = {p.name: p for p in SAME_NAME}


def test_every_row_has_a_value() -> None:
    assert set(VALUES) == set(ROWS)


def _to_chat(name: str, value: Any) -> c.ChatCompletionRequest:
    body = r.CreateResponseBody(model="m", input="hi", **{name: value})
    items: list[r.ItemParam] = [r.MessageItemParam(role="user", content="hi")]
    return to_chat_request(
        body, items, model="m", dialect=get_dialect("openai"), diags=Diagnostics("ignore"), stream=False
    )


def _to_responses(name: str, value: Any) -> r.CreateResponseBody:
    fields = {name: value} if name in c.ChatCompletionRequest.__struct_fields__ else {}
    req = c.ChatCompletionRequest(
        model="m", messages=[c.ChatCompletionUserMessageParam(content="hi")], **fields
    )
    return to_responses_request(req, model="m", diags=Diagnostics("ignore"), stream=False)


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_responses_to_chat(row: SameName) -> None:
    value = VALUES[row.name]
    if row.name not in c.ChatCompletionRequest.__struct_fields__:
        assert not row.to_chat, "Chat has no such field"
        return
    assert getattr(_to_chat(row.name, value), row.name) == (value if row.to_chat else None)


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_chat_to_responses(row: SameName) -> None:
    if row.name not in c.ChatCompletionRequest.__struct_fields__:
        assert not row.to_responses, "Chat has no such field"
        return
    value = VALUES[row.name]
    assert getattr(_to_responses(row.name, value), row.name) == (value if row.to_responses else None)


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_echo(row: SameName) -> None:
    value = VALUES[row.name]
    sent = response_template(
        r.CreateResponseBody(model="m", **{row.name: value}), response_id="resp_1", created_at=1, model="m"
    )
    unset = response_template(r.CreateResponseBody(model="m"), response_id="resp_1", created_at=1, model="m")
    if row.echo:
        assert (getattr(sent, row.name), getattr(unset, row.name)) == (value, row.echo_default)
    else:
        assert row.name not in r.ResponseResource.__struct_fields__

"""A passed-through Chat request is made to fit the route's dialect (issue 17: on a llama-cpp-python
route an array turn arrived empty and ``max_completion_tokens`` was ignored).

Each case: dialect, the client's body, the body that goes upstream, the diagnostics reported.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shim.core.diagnostics import Diagnostics
from shim.dialects.registry import get_dialect
from shim.errors import UnsupportedParameter
from shim.translate.chat_passthrough_request import adapt_chat_body

TEXT = [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello."}]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
CALL = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]


def _user(content: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def _system_user(system: str, user: str) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
    }


CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], str]] = {
    "openai: left as sent": (
        "openai",
        {**_user(TEXT), "max_completion_tokens": 4, "tools": TOOLS},
        {**_user(TEXT), "max_completion_tokens": 4, "tools": TOOLS},
        "",
    ),
    "llama-cpp-python: user parts become one string": (
        "llamacpp-python",
        _user(TEXT),
        _user("Say\n\nhello."),
        "",
    ),
    "llama-cpp-python: max_completion_tokens sent as max_tokens": (
        "llamacpp-python",
        {**_user("hi"), "max_completion_tokens": 4},
        {**_user("hi"), "max_tokens": 4},
        "",
    ),
    "max_completion_tokens wins over max_tokens (as at OpenAI)": (
        "llamacpp-python",
        {**_user("hi"), "max_tokens": 99, "max_completion_tokens": 4},
        {**_user("hi"), "max_tokens": 4},
        "",
    ),
    "llama-cpp-python: an image is reported and left out": (
        "llamacpp-python",
        _user([TEXT[0], IMAGE]),
        _user("Say"),
        "unsupported_content:messages[0].content[1]",
    ),
    "llamacpp: developer goes up as system": (
        "llamacpp",
        {"model": "m", "messages": [{"role": "developer", "content": "be brief"}]},
        {"model": "m", "messages": [{"role": "system", "content": "be brief"}]},
        "",
    ),
    "functions format: tools without a choice get auto": (
        "llamacpp-python-functions",
        {**_system_user("be brief", "hi"), "tools": TOOLS},
        {**_system_user("be brief", "hi"), "tools": TOOLS, "tool_choice": "auto"},
        "",
    ),
    "a choice the client made is kept": (
        "llamacpp-python-functions",
        {**_system_user("be brief", "hi"), "tools": TOOLS, "tool_choice": "none"},
        {**_system_user("be brief", "hi"), "tools": TOOLS, "tool_choice": "none"},
        "",
    ),
    "functions format: tools and no system message get an empty one (the tools are printed there)": (
        "llamacpp-python-functions",
        {**_user("hi"), "tools": TOOLS, "tool_choice": "auto"},
        {**_system_user("", "hi"), "tools": TOOLS, "tool_choice": "auto"},
        "",
    ),
    "functions format: no tools, no system message added": (
        "llamacpp-python-functions",
        _user("hi"),
        _user("hi"),
        "",
    ),
    "functions format: required with one function names it (a 500 as it is)": (
        "llamacpp-python-functions",
        {**_system_user("", "hi"), "tools": TOOLS, "tool_choice": "required"},
        {
            **_system_user("", "hi"),
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        },
        "",
    ),
    "a format that prints tools itself gets no system message": (
        "llamacpp-python",
        {**_user("hi"), "tools": TOOLS},
        {**_user("hi"), "tools": TOOLS},
        "",
    ),
    "llama: a call turn without content gets empty content; unknown fields stay": (
        "llamacpp-python",
        {"model": "m", "messages": [{"role": "assistant", "content": None, "tool_calls": CALL}], "x_v": 1},
        {"model": "m", "messages": [{"role": "assistant", "content": "", "tool_calls": CALL}], "x_v": 1},
        "",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_adapt_chat_body(case: tuple[str, dict[str, Any], dict[str, Any], str]) -> None:
    dialect, sent, upstream, reported = case
    data = copy.deepcopy(sent)
    diags = Diagnostics("warn")
    adapt_chat_body(data, get_dialect(dialect).request, diags)
    assert data == upstream
    assert diags.header_value() == reported


def test_strict_policy_refuses_what_would_be_lost() -> None:
    with pytest.raises(UnsupportedParameter) as caught:
        adapt_chat_body(_user([IMAGE]), get_dialect("llamacpp-python").request, Diagnostics("error"))
    assert caught.value.param == "messages[0].content[0]"


def test_required_among_several_tools_is_refused_where_the_upstream_cannot_say_it() -> None:
    two = [*TOOLS, {"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}}]
    body = {**_user("hi"), "tools": two, "tool_choice": "required"}
    with pytest.raises(UnsupportedParameter) as caught:
        adapt_chat_body(body, get_dialect("llamacpp-python-functions").request, Diagnostics("warn"))
    assert caught.value.param == "tool_choice"

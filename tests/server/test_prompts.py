"""``prompt`` templates: a directory of TOML files, expanded into instructions and input.

Each row sends a ``prompt`` reference and checks what the Chat upstream received (or the 4xx).
The templates are written to a temporary ``prompts_dir``, as an operator would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.conversation.prompts import PromptError, load_prompts
from shim.http.app import create_app
from shim.settings import Route, ServerSettings, Settings
from shim.upstream.client import UpstreamClient
from tests.server.harness import UPSTREAM_URL, Shim, Upstream

SUPPORT = """
description = "Support desk"

[[versions]]
version = "1"
instructions = "You are an old assistant."

[[versions]]
version = "2"
instructions = "You help {{customer}} with {{product}}."
[versions.defaults]
product = "the shim"
[[versions.input]]
role = "user"
content = "My question is about {{product}}."
"""

PHOTO = """
id = "pmpt_photo"

[[versions]]
version = "1"
[[versions.input]]
role = "user"
content = "Look at this: {{photo}} and this file {{doc}}"
"""

IMAGE = {"type": "input_image", "image_url": "https://example.test/cat.png"}
FILE = {"type": "input_file", "file_data": "data:text/plain;base64,aGk=", "filename": "hi.txt"}


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    (tmp_path / "support.toml").write_text(SUPPORT)
    (tmp_path / "photo.toml").write_text(PHOTO)
    return tmp_path


@pytest.fixture
def shim(prompts_dir: Path) -> Shim:
    settings = Settings(
        server=ServerSettings(store="memory://", prompts_dir=str(prompts_dir)),
        routes=(Route(upstream=UPSTREAM_URL, dialect="openai"),),
    )
    upstream = Upstream()
    client = UpstreamClient(settings.server.timeouts, 0, transport=upstream)
    return Shim(create_app(settings, upstream=client), upstream, client, settings)


def _text(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def _system(body: dict[str, Any]) -> str:
    return _text(body["messages"][0])


# prompt (+ other fields) -> check of the upstream body and the answer
CASES: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any], dict[str, Any]], None]]] = {
    "latest version, text variable and a default": (
        {"prompt": {"id": "support", "variables": {"customer": "Ada"}}, "input": "Hi"},
        lambda up, ans: (
            (
                _system(up) == "You help Ada with the shim."
                and _text(up["messages"][1]) == "My question is about the shim."
                and _text(up["messages"][2]) == "Hi"
                and ans["prompt"]["id"] == "support"
            )
            or pytest.fail(str(up))
        ),
    ),
    "a named version": (
        {"prompt": {"id": "support", "version": "1"}, "input": "Hi"},
        lambda up, ans: _system(up) == "You are an old assistant." or pytest.fail(str(up)),
    ),
    "the request's instructions follow the template's": (
        {
            "prompt": {"id": "support", "variables": {"customer": "Ada", "product": "tea"}},
            "instructions": "Be brief.",
        },
        lambda up, ans: _system(up) == "You help Ada with tea.\n\nBe brief." or pytest.fail(str(up)),
    ),
    "a variable given as an input_text part": (
        {"prompt": {"id": "support", "variables": {"customer": {"type": "input_text", "text": "Bo"}}}},
        lambda up, ans: _system(up).startswith("You help Bo ") or pytest.fail(str(up)),
    ),
    "image and file variables stand where they are": (
        {"prompt": {"id": "pmpt_photo", "variables": {"photo": IMAGE, "doc": FILE}}},
        lambda up, ans: (
            [p["type"] for p in up["messages"][0]["content"]] == ["text", "image_url", "text", "file"]
            or pytest.fail(str(up))
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_prompt_is_expanded(
    name: str, shim: Shim, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    request, check = CASES[name]
    answer = await connect(shim).post("/v1/responses", json={"model": "m", **request})
    assert answer.status_code == 200, answer.text
    check(shim.upstream.bodies[-1], answer.json())


ERRORS = {
    "unknown id": ({"id": "nope"}, 404, "prompt_not_found", "prompt.id"),
    "unknown version": ({"id": "support", "version": "9"}, 404, "prompt_not_found", "prompt.version"),
    "missing variable": ({"id": "support"}, 400, "missing_prompt_variable", "prompt.variables.customer"),
    "unknown variable": (
        {"id": "support", "variables": {"customer": "A", "mood": "x"}},
        400,
        "unknown_prompt_variable",
        "prompt.variables.mood",
    ),
    "an image where only text goes": (
        {"id": "support", "variables": {"customer": IMAGE}},
        400,
        "invalid_request",
        "prompt.variables.customer",
    ),
    "a variable of no known kind": (
        {"id": "support", "variables": {"customer": {"type": "input_audio"}}},
        400,
        "invalid_request",
        "prompt.variables.customer",
    ),
    "not a reference": ({"version": "1"}, 400, "invalid_request", "prompt"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
async def test_prompt_errors_name_the_field(
    name: str, shim: Shim, connect: Callable[[Shim], httpx.AsyncClient]
) -> None:
    prompt, status, code, param = ERRORS[name]
    answer = await connect(shim).post("/v1/responses", json={"model": "m", "input": "x", "prompt": prompt})
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert shim.upstream.requests == []


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"a.toml": "versions = []"}, "versions"),
        ({"a.toml": '[[versions]]\nversion = "1"\nbogus = 1'}, "bogus"),
        ({"a.toml": '[[versions]]\nversion = "1"\n[[versions]]\nversion = "1"'}, "listed twice"),
        (
            {
                "a.toml": 'id = "x"\n[[versions]]\nversion = "1"',
                "b.toml": 'id = "x"\n[[versions]]\nversion = "1"',
            },
            "twice",
        ),
    ],
)
def test_a_bad_template_file_is_refused_at_start_up(
    tmp_path: Path, files: dict[str, str], problem: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(PromptError, match=problem):
        load_prompts(tmp_path)

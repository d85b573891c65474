"""Throw malformed and hostile requests at the app in-process and sort every answer.

Two sources of requests:
- ``schemathesis``: cases generated from the app's own OpenAPI document (/schema/openapi.json),
  positive and negative, for every operation;
- ``hostile``: hypothesis strategies for what a schema-driven generator rarely tries: random
  bytes, invalid UTF-8, deep nesting, huge and odd values in real fields, wrong types at every
  level, odd methods and paths.

Every answer must be below 500 and, when 4xx, in the error envelope; ``FuzzReport.bad`` lists
the ones that are not. The app runs over a scripted upstream, so valid requests succeed (200).
Used by tests/ops/test_fuzz.py (a small count) and bench/fuzz.py (the 5,000+ figure).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar

from shim.http.app import create_app
from shim.settings import Route, ServerSettings, Settings, Timeouts
from shim.upstream.client import UpstreamClient
from tests.support import scripted_chat

__all__ = ["FuzzReport", "fuzz_app", "hostile_requests", "run_hostile", "run_schemathesis"]

ENDPOINTS = [
    ("POST", "/v1/responses"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/responses/compact"),
    ("GET", "/v1/responses/resp_x"),
    ("DELETE", "/v1/responses/resp_x"),
    ("GET", "/v1/responses/resp_x/input_items"),
    ("POST", "/v1/responses/resp_x/cancel"),
    ("GET", "/v1/models"),
]
_HEALTH = list(HealthCheck)


@dataclass
class FuzzReport:
    statuses: Counter[int] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def check(self, what: str, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        status = response.status_code
        if status >= 500:
            self.bad.append(f"{what} -> {status}: {response.text[:200]}")
        elif status >= 400 and response.request.method != "HEAD":  # a HEAD answer has no body
            try:
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"} and error["message"]
            except Exception:
                self.bad.append(f"{what} -> {status} without the envelope: {response.text[:200]}")


def fuzz_app() -> Litestar:
    """The app over the scripted upstream, as ``serve`` builds it (memory store)."""
    os.environ.setdefault("SHIM_SECRET", "fuzz-secret")
    server = ServerSettings(store="memory://", retries=0, max_body_bytes=1024 * 1024)
    cfg = Settings(server=server, routes=(Route(upstream="http://upstream.test/v1"),))
    client = UpstreamClient(
        server.timeouts or Timeouts(), 0, transport=httpx.ASGITransport(scripted_chat.app)
    )
    return create_app(cfg, upstream=client)


class _Driver:
    """Sync calls into the app on one private event loop (hypothesis tests are sync)."""

    def __init__(self, app: Litestar) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://shim", timeout=30
        )

    def send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kw))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def _fuzz_operation(driver: _Driver, report: FuzzReport, strategy: Any, mode: str, examples: int) -> None:
    @given(strategy)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=_HEALTH)
    def one(case: Any) -> None:
        kw = case.as_transport_kwargs(base_url="http://shim")
        kw.pop("cookies", None)
        params, data, payload = kw.pop("params", None), kw.pop("data", None), kw.pop("json", None)
        content = data if isinstance(data, bytes) else None
        if payload is not None or (data is not None and content is None):
            content = json.dumps(payload if payload is not None else data).encode()
        response = driver.send(
            kw["method"], kw["url"], headers=kw.get("headers"), params=params, content=content
        )
        report.check(f"schemathesis {mode} {kw['method']} {kw['url']} {content!r:.120}", response)

    one()


def run_schemathesis(app: Litestar, report: FuzzReport, examples: int) -> None:
    """``examples`` cases per operation and generation mode from the app's OpenAPI document."""
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    driver = _Driver(app)
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in GenerationMode:
                with contextlib.suppress(Unsatisfiable):  # e.g. no negative case for an input-less operation
                    _fuzz_operation(driver, report, operation.as_strategy(mode), mode.value, examples)
    finally:
        driver.close()


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
_json = st.recursive(
    _json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)
_FIELDS = ["model", "input", "instructions", "tools", "tool_choice", "metadata", "previous_response_id", "stream",
           "temperature", "max_output_tokens", "text", "reasoning", "include", "store", "background", "truncation",
           "messages", "n", "stop", "response_format", "stream_options", "parallel_tool_calls", "top_p"]  # fmt: skip
_ITEM_TYPES = [
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "item_reference",
    "compaction",
    "x",
]
_ITEM_FIELDS = [
    "role",
    "content",
    "call_id",
    "name",
    "arguments",
    "output",
    "id",
    "summary",
    "encrypted_content",
]
_item = st.fixed_dictionaries(
    {"type": st.sampled_from(_ITEM_TYPES)}, optional={k: _json for k in _ITEM_FIELDS}
)
_body = st.fixed_dictionaries(
    {"model": st.one_of(st.just("m"), _json)},
    optional={
        **{k: _json for k in _FIELDS if k != "model"},
        "input": st.one_of(_json, st.lists(_item, max_size=5)),
    },
)


def _deep(depth: int) -> bytes:
    return b'{"model":"m","input":' + b"[" * depth + b"]" * depth + b"}"


hostile_bodies = st.one_of(
    st.binary(max_size=200),
    _json.map(lambda v: json.dumps(v).encode()),
    _body.map(lambda v: json.dumps(v).encode()),
    _body.map(lambda v: json.dumps(v).encode()[:-1]),  # cut short
    st.tuples(_body, st.binary(min_size=1, max_size=4)).map(
        lambda t: json.dumps(t[0]).encode()[:-1] + t[1] + b"}"
    ),
    st.integers(min_value=60, max_value=5000).map(_deep),
    st.text(max_size=30).map(
        lambda t: ('{"model":"m","input":"' + t + '"}').encode("utf-8", "surrogatepass")
    ),
)


def hostile_requests() -> st.SearchStrategy[tuple[str, str, bytes, dict[str, str]]]:
    headers = st.dictionaries(
        st.sampled_from(["content-type", "authorization", "x-request-id", "accept", "x-shim-reasoning"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=3,
    )
    endpoint = st.one_of(
        st.sampled_from(ENDPOINTS),
        st.tuples(
            st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
            st.sampled_from([p for _, p in ENDPOINTS]),
        ),
        st.tuples(
            st.just("GET"), st.text(alphabet="abcxyz/_-.%", max_size=30).map(lambda p: "/v1/responses/" + p)
        ),
    )
    return st.tuples(endpoint, hostile_bodies, headers).map(lambda t: (t[0][0], t[0][1], t[1], t[2]))


def run_hostile(app: Litestar, report: FuzzReport, examples: int) -> None:
    driver = _Driver(app)
    try:

        @given(hostile_requests())
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=_HEALTH)
        def one(request: tuple[str, str, bytes, dict[str, str]]) -> None:
            method, path, body, headers = request
            content = body if method not in ("GET", "HEAD", "DELETE") else None
            response = driver.send(method, path, content=content, headers=headers)
            report.check(f"hostile {method} {path} {body!r:.120}", response)

        one()
    finally:
        driver.close()

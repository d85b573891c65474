"""The pieces of aiohttp and httpx the upstream transport drives directly (issue 18), checked for
shape: a release that renames, drops or re-orders them fails here, by name, before any request
goes wrong. ``shim.upstream.transport.AiohttpTransport._post`` makes the calls
``ClientSession._request`` makes for a POST (connector, request writer, parser); if aiohttp's own
sequence changes, the mirror is stale and ``test_session_request_makes_the_calls_we_make`` says so.
pyproject.toml pins aiohttp to the minor releases this was checked against."""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap

import aiohttp
import httpx
import pytest
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import TimerNoop

from shim.upstream import transport as shim_transport


def _parameters(function: object) -> set[str]:
    return set(inspect.signature(function).parameters)  # type: ignore[arg-type]


def _calls(function: object) -> dict[str, set[str]]:
    """Each method called in ``function``'s source (by attribute name) and the keywords passed."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            found.setdefault(node.func.attr, set()).update(k.arg for k in node.keywords if k.arg)
    return found


SIGNATURES = {
    "ClientRequest(...)": (
        aiohttp.ClientRequest.__init__,
        {
            "method",
            "url",
            "headers",
            "skip_auto_headers",
            "data",
            "loop",
            "proxy",
            "timer",
            "session",
            "ssl",
            "proxy_headers",
        },
    ),
    "ClientRequest.send(conn)": (aiohttp.ClientRequest.send, {"conn"}),
    "ClientResponse.start(connection)": (aiohttp.ClientResponse.start, {"connection"}),
    "BaseConnector.connect(req, traces, timeout)": (
        aiohttp.BaseConnector.connect,
        {"req", "traces", "timeout"},
    ),
    "BaseConnector._release(key, protocol, should_close)": (
        aiohttp.BaseConnector._release,
        {"key", "protocol", "should_close"},
    ),
    "ResponseHandler.set_response_params(...)": (
        ResponseHandler.set_response_params,
        {
            "timer",
            "skip_payload",
            "read_until_eof",
            "auto_decompress",
            "read_timeout",
            "read_bufsize",
            "timeout_ceil_threshold",
            "max_line_size",
            "max_field_size",
            "max_headers",
        },
    ),
    "ResponseHandler.resume_reading(resume_parser)": (ResponseHandler.resume_reading, {"resume_parser"}),
}


@pytest.mark.parametrize(("function", "wanted"), SIGNATURES.values(), ids=SIGNATURES.keys())
def test_signatures(function: object, wanted: set[str]) -> None:
    missing = wanted - _parameters(function)
    assert not missing, f"aiohttp {aiohttp.__version__}: {function} lost parameters {missing}"


def test_session_request_makes_the_calls_we_make() -> None:
    """The calls (and, for the protocol, the settings) of ``ClientSession._request`` that
    ``AiohttpTransport._post`` repeats: nothing added, nothing dropped."""
    theirs = _calls(aiohttp.ClientSession._request)
    ours = _calls(shim_transport.AiohttpTransport._post)
    for call in ("connect", "set_response_params", "send", "start"):
        assert call in theirs, (
            f"aiohttp {aiohttp.__version__}: ClientSession._request no longer calls .{call}()"
        )
        assert call in ours
    assert theirs["set_response_params"] == ours["set_response_params"], (
        f"aiohttp {aiohttp.__version__} sets other response parameters: "
        f"{theirs['set_response_params'] ^ ours['set_response_params']}"
    )
    assert theirs["connect"] == ours["connect"] == {"traces", "timeout"}


async def test_the_objects_hold_what_we_read() -> None:
    """Attributes read off aiohttp's objects (a request's payload, the connector's ceil
    threshold, the protocol's pause flags, a session's skipped headers)."""
    session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))
    try:
        request = aiohttp.ClientRequest(
            "POST",
            shim_transport.URL("http://127.0.0.1:9/x"),
            data=b"body",
            timer=TimerNoop(),
            session=session,
        )
        assert isinstance(request._body, aiohttp.payload.Payload)
        assert inspect.iscoroutinefunction(request._body.close)
        assert isinstance(session.connector, aiohttp.BaseConnector)
        assert isinstance(session.connector._timeout_ceil_threshold, float | int)
        assert session.skip_auto_headers == frozenset({"User-Agent"})
        handler = ResponseHandler(asyncio.get_running_loop())
        assert handler._reading_paused is False and handler._buffer_paused is False
        # the read timeout's timer (``_Handler`` keeps one armed)
        assert handler._read_timeout_handle is None and handler._read_timeout is None
        for method in ("_reschedule_timeout", "_drop_timeout", "_on_read_timeout"):
            assert callable(getattr(handler, method)), method
    finally:
        await session.close()


async def test_the_skipped_headers_are_the_sessions() -> None:
    transport = shim_transport.AiohttpTransport()
    session = transport._open()
    try:
        assert transport._skip == session.skip_auto_headers
    finally:
        await transport.aclose()


def test_httpx_pieces() -> None:
    """httpx's parsed URL is shared by a request's copy of it (the transport's cache key), and
    a response's body read is held in ``_content`` (what ``UpstreamClient`` sets)."""
    url = httpx.URL("http://127.0.0.1:9/v1/chat/completions")
    request = httpx.Request("POST", url, content=b"x")
    key = request.url._uri_reference
    assert key == url._uri_reference and hash(key) == hash(url._uri_reference)
    assert key != httpx.URL("http://127.0.0.1:9/v1/responses")._uri_reference
    response = httpx.Response(200, stream=httpx.ByteStream(b""))
    response._content = b"read"
    assert response.content == b"read"
    raw = request.headers.raw
    raw.pop()
    assert len(request.headers.raw) == len(raw) + 1, "Headers.raw must be a fresh list"

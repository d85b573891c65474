"""Redaction of an exchange before it is kept: a table of chunkings and secrets."""

from __future__ import annotations

import pytest

from shim.fixtures.exchange import ClientRequest, Exchange, UpstreamCall, UpstreamRequest
from shim.fixtures.scrub import patterns, scrub, scrub_chunks

KEY = "sk-0123456789abcdefXYZ"  # long: its last 8 characters are cut too
M = b"[redacted]"


@pytest.mark.parametrize(
    ("chunks", "expected", "count"),
    [
        ([b"no secret here"], [b"no secret here"], 0),
        ([b"a " + KEY.encode() + b" b"], [b"a " + M + b" b"], 1),
        # Split across two chunks: those two are merged, the other boundary stays.
        ([b"x", b"key sk-0123", b"456789abcdefXYZ!", b"tail"], [b"x", b"key " + M + b"!", b"tail"], 1),
        # Across three chunks.
        ([b"sk-01", b"23456789ab", b"cdefXYZ", b"."], [M, b"."], 1),
        # The masked form vendors show (the last 8 characters) is cut as well.
        ([b"key ...abcdefXYZ"], [b"key ...a" + M], 1),
        ([], [], 0),
    ],
)
def test_scrub_chunks(chunks: list[bytes], expected: list[bytes], count: int) -> None:
    assert scrub_chunks(chunks, patterns([KEY])) == (expected, count)


def test_short_values_are_not_secrets() -> None:
    assert patterns(["abc", "", KEY]) == [KEY.encode(), KEY[-8:].encode()]


def test_scrub_exchange_headers_bodies_urls() -> None:
    request = UpstreamRequest(
        "POST",
        f"http://u/v1/chat?key={KEY}",
        {"authorization": f"Bearer {KEY}", "x-org": "org-secret-value", "accept": "*/*"},
        b'{"k": "' + KEY.encode() + b'"}',
        {},
        secrets=(KEY,),
    )
    exchange = Exchange(
        "x1",
        0.0,
        client=ClientRequest(
            "POST", "/v1/responses", {"authorization": "Bearer client-key-123"}, b"client-key-123"
        ),
        calls=[UpstreamCall(request, 200, {"set-cookie": "s=1"}, [KEY.encode()])],
    )
    scrub(exchange, ["client-key-123"], header_names=["X-Org"])
    assert exchange.client is not None
    assert exchange.client.headers == {"authorization": "[redacted]"} and exchange.client.body == M
    assert request.headers == {"authorization": "[redacted]", "x-org": "[redacted]", "accept": "*/*"}
    assert KEY not in request.url and request.body == b'{"k": "[redacted]"}'
    assert exchange.calls[0].chunks == [M] and exchange.calls[0].headers == {"set-cookie": "[redacted]"}
    assert request.secrets == () and exchange.redactions == 8

"""Fuzzing in the suite (a small count; bench/fuzz.py runs 5,000+): schemathesis cases from the
app's own OpenAPI and hostile hypothesis requests. No answer is a 5xx; every 4xx is an envelope;
the app is still healthy afterwards.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from tests.support.fuzzing import FuzzReport, fuzz_app, run_hostile, run_schemathesis


def _healthy(app: object) -> bool:
    async def check() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://shim") as client:  # type: ignore[arg-type]
            ok = await client.post("/v1/responses", json={"model": "m", "input": "still there?"})
            return ok.status_code

    return asyncio.run(check()) == 200


@pytest.mark.parametrize(("source", "examples"), [("schemathesis", 3), ("hostile", 150)])
def test_fuzz_no_5xx(source: str, examples: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)
    app = fuzz_app()
    report = FuzzReport()
    (run_schemathesis if source == "schemathesis" else run_hostile)(app, report, examples)
    assert report.total >= examples
    assert report.bad == []
    assert any(400 <= s < 500 for s in report.statuses), "the fuzzer produced no bad input at all"
    assert _healthy(app)

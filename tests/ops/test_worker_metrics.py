"""``shim serve --workers 2``: ``/metrics`` counts every worker's requests, whichever worker
answers the scrape (issue 17: scrapes alternated between workers and counters seemed to reset).

Each request here opens its own connection, so the kernel spreads them over both workers; every
scrape must then show the total, and the access log must show that both workers answered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.processes import Served, serve_shim

UP = ["--upstream", "http://127.0.0.1:9/v1", "--dialect", "openai"]
REQUESTS = 24
# /readyz: the start-up wait polls /healthz, which would add requests this test did not make
READYZ = re.compile(r'^shim_requests_total\{method="GET",route="/readyz",status="200"\} (\S+)$', re.M)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    shim = serve_shim(
        tmp_path_factory.mktemp("workers"), *UP, "--workers", "2", "--store", "memory://", timeout=90
    )
    yield shim
    shim.stop()


def _readyz_total(base: str) -> float:
    text = httpx.get(f"{base}/metrics", headers={"connection": "close"}).text
    found = READYZ.findall(text)
    assert len(found) == 1, text  # one series: the workers' counts are summed, not listed per pid
    return float(found[0])


def test_every_scrape_counts_every_worker(workers: Served) -> None:
    base = workers.base_url.removesuffix("/v1")
    for _ in range(REQUESTS):
        assert httpx.get(f"{base}/readyz", headers={"connection": "close"}).status_code == 200
    totals = {_readyz_total(base) for _ in range(8)}
    assert totals == {float(REQUESTS)}, totals


def test_open_streams_is_one_gauge(workers: Served) -> None:
    base = workers.base_url.removesuffix("/v1")
    text = httpx.get(f"{base}/metrics").text
    assert re.findall(r"^shim_open_streams(\{.*\})? (\S+)$", text, re.M) == [("", "0.0")], text

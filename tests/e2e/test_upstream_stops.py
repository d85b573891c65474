"""A cancelled background response, or a client that hangs up mid-stream, stops the real model
(issue 17: a cancel left llama generating 399 more tokens and the next request waited 8 s).

The proof is the llama server's own log: llama-cpp-python prints "Disconnected from client" when
it notices a closed connection between two chunks of a stream, and stops there; a generation
that runs to its end prints its ``llama_perf_context_print: eval time = … / N runs`` line
instead. An unstreamed request is never noticed, which is why ``stream_to_cancel`` sends
background turns streamed (mappings/llamacpp-python.toml), and JSON turns too on a route with
``cancel_json`` (as the embedded model's route has).

The model is served with the plain ``gemma`` format, where a base model writes until its limit:
each request here asks for 400 tokens (about 30 s of work), far more than the test waits.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shim.cli.embedded import DIALECT, MODEL_ALIAS
from tests.support.processes import Served, serve_shim
from tests.support.real_components import running_llama

LONG = {"model": MODEL_ALIAS, "input": "Tell me a long story about a dragon.", "max_output_tokens": 400}
DISCONNECTED = "Disconnected from client"
# a generation's own summary line, written when it ran to its end
RUNS = re.compile(r"llama_perf_context_print:\s+eval time =.*?/\s+(\d+) runs")


class Llama:
    def __init__(self, log: Path) -> None:
        self.log = log

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Llama, Served]]:
    work = tmp_path_factory.mktemp("stops")
    log = work / "llama.log"
    with running_llama(log) as url:
        config = work / "shim.toml"
        config.write_text(f'[[routes]]\nupstream = "{url}"\ndialect = "{DIALECT}"\ncancel_json = true\n')
        shim = serve_shim(work, "--config", str(config), "--store", "memory://")
        yield Llama(log), shim
        shim.stop()


def _stopped_since(llama: Llama, mark: int, timeout: float = 30) -> str:
    """The llama log written after ``mark`` once it says the client went away."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = llama.text()[mark:]
        if DISCONNECTED in new:
            return new
        time.sleep(0.5)
    raise AssertionError(f"llama never noticed the closed connection:\n{llama.text()[mark:][-3000:]}")


def _assert_no_long_generation(log_part: str) -> None:
    runs = [int(n) for n in RUNS.findall(log_part)]
    assert all(n < 100 for n in runs), runs  # none ran on towards its 400 tokens


def test_cancelled_background_response_stops_the_model(llama: tuple[Llama, Served]) -> None:
    server, shim = llama
    mark = len(server.text())
    with httpx.Client(base_url=shim.base_url, timeout=120) as client:
        queued = client.post("/responses", json={**LONG, "background": True}).json()
        deadline = time.monotonic() + 60
        while client.get(f"/responses/{queued['id']}").json()["status"] == "queued":
            assert time.monotonic() < deadline, "the background response never started"
            time.sleep(0.2)
        time.sleep(2)  # generating now
        cancelled = client.post(f"/responses/{queued['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled", cancelled.text
        log_part = _stopped_since(server, mark)
        # the model is free at once: a one-token request does not wait for 400 tokens
        started = time.monotonic()
        after = client.post("/responses", json={**LONG, "max_output_tokens": 1})
        assert after.json()["status"] in ("completed", "incomplete"), after.text
    _assert_no_long_generation(log_part)
    assert time.monotonic() - started < 25


def test_client_hanging_up_mid_stream_stops_the_model(llama: tuple[Llama, Served]) -> None:
    server, shim = llama
    mark = len(server.text())
    with (
        httpx.Client(base_url=shim.base_url, timeout=120) as client,
        client.stream("POST", "/responses", json={**LONG, "stream": True}) as stream,
    ):
        deltas = 0
        for line in stream.iter_lines():
            deltas += '"response.output_text.delta"' in line
            if deltas >= 3:
                break  # hang up: leaving the block closes the connection
    _assert_no_long_generation(_stopped_since(server, mark))


def test_client_hanging_up_on_an_unstreamed_request_stops_the_model(llama: tuple[Llama, Served]) -> None:
    """A JSON request (no ``stream``) whose client gives up: the shim notices the disconnect and
    closes its upstream request, which goes streamed (``stream_to_cancel``) so that llama stops."""
    server, shim = llama
    mark = len(server.text())
    with httpx.Client(base_url=shim.base_url, timeout=httpx.Timeout(120, read=4)) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post("/responses", json=LONG)  # gives up after 4 s, closing the connection
        log_part = _stopped_since(server, mark)
        started = time.monotonic()
        after = client.post("/responses", json={**LONG, "max_output_tokens": 1}, timeout=120)
        assert after.json()["status"] in ("completed", "incomplete"), after.text
    _assert_no_long_generation(log_part)
    assert time.monotonic() - started < 25

"""Failover under load: the route's own upstream (the fault upstream's process, answering ``drip``:
four pieces 50 ms apart) is killed with SIGKILL while many clients keep asking, over real sockets
on both sides.

Every request whose answer had not begun streaming when the upstream died is answered by the
fallback (the scripted Chat upstream, its own process): 0 failures among them. A stream that was being
relayed from the killed upstream may end failed (its client already had part of the answer; it
is never re-sent). The route sets ``failover_resend``: requests the killed upstream had received
but not answered are re-sent (without it they would get 502 ``upstream_reset``, by design). The
breaker of the killed upstream opens, and /metrics and /readyz say so.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from shim.settings import BreakerSettings, Fallback, Timeouts
from tests.support.live_shim import LiveShim
from tests.upstream.conftest import start_scripted

CLIENTS = 24
PRIMARY = "The fault upstream answers."  # ``drip``: four pieces 50 ms apart
FALLBACK = "scripted upstream says hello"

ASKS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/responses", {"model": "m", "input": "hi"}),
    ("/v1/responses", {"model": "m", "input": "hi", "stream": True}),
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}),
]


def _outcome(path: str, body: dict[str, Any], status: int, text: str) -> str:
    """ "primary" / "fallback" (who answered, whole), "before" (failed before any answer byte),
    "during" (a stream that began, then failed)."""
    if status != 200:
        return "before"
    if not body.get("stream"):
        data = json.loads(text)
        answer = (
            data["choices"][0]["message"]["content"]
            if path.endswith("completions")
            else data["output"][0]["content"][0]["text"]
        )
    elif path.endswith("completions"):  # data lines only
        if not text.endswith("data: [DONE]\n\n"):
            return "during"
        chunks = [json.loads(b.removeprefix("data: ")) for b in text.strip().split("\n\n")[:-1]]
        if any("error" in chunk for chunk in chunks):
            return "during"
        answer = "".join((c.get("delta") or {}).get("content") or "" for k in chunks for c in k["choices"])
    else:
        if "event: response.completed" not in text:
            return "during"
        events = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: {")]
        answer = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    return "primary" if PRIMARY in answer else "fallback" if FALLBACK in answer else "during"


async def test_upstream_killed_under_load(tmp_path: Path) -> None:
    primary = start_scripted("fault_upstream.py", tmp_path / "primary.log")
    fallback = start_scripted("scripted_chat.py", tmp_path / "fallback.log")
    shim = LiveShim(
        primary.base_url,
        route={
            "model": "drip",
            "fallbacks": (Fallback(upstream=fallback.base_url, model="scripted"),),
            "failover_resend": True,
        },
        timeouts=Timeouts(connect=2, first_byte=10, idle=10),
        breaker=BreakerSettings(failures=3, cooldown=600),
    )
    config = uvicorn.Config(shim.app, host="127.0.0.1", port=0, log_level="error", backlog=1024)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    outcomes: dict[str, int] = {"primary": 0, "fallback": 0, "before": 0, "during": 0}
    failures: list[str] = []
    killed = asyncio.Event()
    after_kill = 0

    async def client(n: int) -> None:
        nonlocal after_kill
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            k = n
            while after_kill < 300:
                path, body = ASKS[k % len(ASKS)]
                k += 1
                was_killed = killed.is_set()
                response = await http.post(path, json=body)
                outcome = _outcome(path, body, response.status_code, response.text)
                outcomes[outcome] += 1
                if outcome == "before":
                    failures.append(
                        f"{path} {body.get('stream')}: {response.status_code} {response.text[:200]}"
                    )
                if was_killed:
                    after_kill += 1

    async def kill() -> None:
        while outcomes["primary"] < 100:
            await asyncio.sleep(0.01)
        os.kill(primary.proc.pid, signal.SIGKILL)
        killed.set()

    try:
        async with asyncio.timeout(120):
            await asyncio.gather(kill(), *(client(n) for n in range(CLIENTS)))
        assert failures == [], failures[:5]
        assert outcomes["primary"] >= 100 and outcomes["fallback"] >= 300, outcomes
        label = primary.base_url
        ready = (await shim.client.get("/readyz")).json()
        assert ready["upstreams"] == {label: "open", fallback.base_url: "closed"}, ready
        page = (await shim.client.get("/metrics")).text
        assert f'shim_upstream_state{{state="open",upstream="{label}"}} 1.0' in page
        assert f'shim_upstream_breaker_transitions_total{{to="open",upstream="{label}"}} 1.0' in page
        print(f"outcomes: {outcomes}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        await shim.aclose()
        primary.stop()
        fallback.stop()

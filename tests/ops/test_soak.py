"""The soak in miniature (bench/soak.py is the full one: 500 streams, 60 s): real sockets both
sides, many concurrent streams, a fifth of the clients hanging up at random points. The others
all complete; afterwards no upstream connection is still busy and the process holds no more file
descriptors than before plus the idle keep-alive connections of the shim's pool (both ends, as
both servers run in this process).
"""

from __future__ import annotations

import asyncio
import os
import random

import httpx
import uvicorn

from shim.settings import Timeouts
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim

STREAMS = 40
ROUNDS = 2


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_short_soak(fault: FaultUpstream) -> None:
    shim = LiveShim(fault.url, timeouts=Timeouts(first_byte=10, idle=10))
    config = uvicorn.Config(shim.app, host="127.0.0.1", port=0, log_level="error", backlog=1024)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    fds_before = _fds()
    completed, hung_up, errors = 0, 0, []
    rng = random.Random(6)

    async def client() -> None:
        nonlocal completed, hung_up
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for _ in range(ROUNDS):
                hang_up_at = rng.randint(1, 8) if rng.random() < 0.2 else None
                text = ""
                body = {"model": "drip", "input": "hi", "stream": True}
                async with http.stream("POST", "/v1/responses", json=body) as response:
                    async for chunk in response.aiter_text():
                        text += chunk
                        if hang_up_at is not None and text.count("\n\n") >= hang_up_at:
                            break
                if hang_up_at is not None and "[DONE]" not in text:
                    hung_up += 1
                elif "event: response.completed" in text and text.endswith("data: [DONE]\n\n"):
                    completed += 1
                else:
                    errors.append(text[-300:])

    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(client() for _ in range(STREAMS)))
        assert errors == []
        assert completed + hung_up == STREAMS * ROUNDS and hung_up > 0
        assert await _settled(fault), f"{fault.busy_connections} upstream connections still busy"
        await asyncio.sleep(0.2)  # the server side of the closed client connections
        idle_pool = fault.open_connections  # both ends live in this process
        assert _fds() <= fds_before + 2 * idle_pool + 5
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        await shim.aclose()
    assert await fault.wait_connections(0, within=1.0), "closing the shim closes its upstream pool"


async def _settled(fault: FaultUpstream) -> bool:
    for _ in range(100):
        if fault.busy_connections == 0:
            return True
        await asyncio.sleep(0.01)
    return False

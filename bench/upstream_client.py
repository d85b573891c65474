"""Which upstream HTTP client: each option alone against the fake upstream, CPU per request.

    .venv/bin/python -m bench.upstream_client [--clients 64] [--seconds 5] [--variants httpx,shim,aiohttp]

The shim's own figures mix the client with Litestar, translation and logging; this isolates the
client. Each variant runs in a fresh process pinned to ``--cpu`` (uvloop, like the shim), with
``--clients`` tasks POSTing the same 50-token Chat request in a loop through ``httpx.AsyncClient``
(the way ``shim.upstream.client`` does: ``send(stream=True)``, read, close), then the same for 200-chunk SSE
answers. It prints req/s and the client process's CPU milliseconds per request (steadier than
req/s on a shared machine).

Variants: ``httpx`` (the default transport, httpcore, with the shim's limits), ``shim``
(``shim.upstream.transport.KeepAliveTransport``), ``aiohttp`` (``httpx_aiohttp.AiohttpTransport``,
the openai SDK's option; skipped when not importable: it is not a dependency of the project; put
it on ``PYTHONPATH`` to measure it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from bench.servers import ROOT, start_upstream

_CHAT = {"model": "fake", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 64}
_LIMITS = {"max_connections": 2000, "max_keepalive_connections": 200, "keepalive_expiry": 60.0}


def _transport(variant: str) -> object:
    import httpx

    limits = httpx.Limits(**_LIMITS)
    if variant == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    if variant == "shim":
        from shim.upstream.transport import KeepAliveTransport

        return KeepAliveTransport(limits)
    if variant == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits)
    raise ValueError(variant)


async def _load(variant: str, url: str, clients: int, seconds: float, stream: bool) -> dict[str, float]:
    import httpx

    body = json.dumps({**_CHAT, "stream": True} if stream else _CHAT).encode()
    transport = _transport(variant)
    assert isinstance(transport, httpx.AsyncBaseTransport)
    client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30.0))
    done = 0
    chunks = 0
    stop = False

    async def worker() -> None:
        nonlocal done, chunks
        while not stop:
            request = client.build_request(
                "POST", url, content=body, headers={"content-type": "application/json"}
            )
            response = await client.send(request, stream=True)
            try:
                async for _ in response.aiter_raw():
                    chunks += 1
            finally:
                await response.aclose()
            assert response.status_code == 200
            done += 1

    tasks = [asyncio.create_task(worker()) for _ in range(clients)]
    await asyncio.sleep(0.5)  # warm-up: connections opened
    done = chunks = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall, n, c = time.process_time() - cpu0, time.perf_counter() - t0, done, chunks
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()
    return {
        "req_per_s": round(n / wall, 1),
        "cpu_ms_per_req": round(cpu * 1000 / max(n, 1), 4),
        "cpu_share": round(cpu / wall, 2),
        "reads_per_req": round(c / max(n, 1), 1),
    }


def _child(args: argparse.Namespace) -> int:
    import uvloop

    result = uvloop.run(_load(args.child, args.url, args.clients, args.seconds, args.stream))
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--variants", default="httpx,shim,aiohttp")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cpu", default="0", help="core of the client under test")
    parser.add_argument("--upstream-cpu", default="1", help="core of the fake upstream")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    for stream, tokens in ((False, 50), (True, 200)):
        upstream = start_upstream(args.upstream_cpu, tokens, 0.0)
        url = f"http://127.0.0.1:{upstream.port}/v1/chat/completions"
        try:
            for variant in args.variants.split(","):
                for _ in range(args.runs):
                    cmd = ["taskset", "-c", args.cpu, sys.executable, "-m", "bench.upstream_client"]
                    cmd += ["--child", variant, "--url", url, "--clients", str(args.clients)]
                    cmd += ["--seconds", str(args.seconds)] + (["--stream"] if stream else [])
                    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        print(f"{variant}: failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
                        continue
                    with open("/proc/loadavg") as f:
                        load = f.read().split()[0]
                    kind = f"sse {tokens}" if stream else f"json {tokens}"
                    print(f"{kind:8} {variant:8} {done.stdout.strip()} load {load}", flush=True)
        finally:
            upstream.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

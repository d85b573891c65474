"""Which upstream HTTP client: each option alone against the fake upstream, CPU per request.

    .venv/bin/python -m bench.upstream_client [--clients 64] [--seconds 5] [--runs 3]
        [--variants httpx,handwritten,httpx-aiohttp,aiohttp,client]

The shim's own figures mix the client with Litestar, translation and logging; this isolates the
client. Each variant runs in a fresh process pinned to ``--cpu`` (uvloop, like the shim), with
``--clients`` tasks POSTing the same 50-token Chat request in a loop the way ``shim.upstream``
does (a new ``httpx.Request``, straight to the transport, the body read with ``aiter_raw``, then
closed), then the same for 200-chunk SSE answers. CPU is the client process's own
(``resource.getrusage(RUSAGE_SELF)``, user + system), divided by the requests completed: steadier
than req/s on a shared machine, where the wall clock measures the neighbours.

Variants: ``httpx`` (httpx's default transport, httpcore, with the shim's limits); ``handwritten``
(the keep-alive transport the shim had until commit deb5485, loaded from git history: it needs
``git`` and ``httptools``); ``httpx-aiohttp`` (the PyPI package's ``AiohttpTransport``, the
openai SDK's option); ``aiohttp`` (``shim.upstream.transport.AiohttpTransport``, what the shim
uses now); ``client`` (``shim.upstream.client.UpstreamClient.send`` over that transport, the way
the server calls it: the request built per route, the answer bounded and read; the cost issue 18
measures as "the upstream call").

``--requests N`` makes each child stop after N requests (after ``--warmup``, 200) instead of timing
``--seconds``: the fixed amount of work to count instructions with, whatever the machine's load::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out .venv/bin/python -m \
        bench.upstream_client --child client --url http://127.0.0.1:PORT/v1/chat/completions \
        --clients 64 --requests 2000

(``Ir`` over the requests, minus a run with ``--requests 0`` for start-up and warm-up.)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.servers import ROOT, start_upstream

_CHAT = {"model": "fake", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 64}
_LIMITS = {"max_connections": 2000, "max_keepalive_connections": 200, "keepalive_expiry": 60.0}
_HANDWRITTEN = "deb5485"  # the last commit with the hand-written transport


def _handwritten() -> type:
    source = subprocess.run(
        ["git", "show", f"{_HANDWRITTEN}:shim/upstream_transport.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "handwritten_transport.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("handwritten_transport", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls: type = module.KeepAliveTransport
    return cls


def _transport(variant: str) -> object:
    import httpx

    limits = httpx.Limits(**_LIMITS)
    if variant == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    if variant == "handwritten":
        return _handwritten()(limits)
    if variant == "httpx-aiohttp":  # not a dependency: `pip install httpx-aiohttp` to measure it
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits)
    if variant == "aiohttp":
        from shim.upstream.transport import AiohttpTransport as Ours

        return Ours(limits)
    raise ValueError(variant)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _client(url: str) -> tuple[object, object, str]:
    """An ``UpstreamClient`` and the ``Resolved`` route it sends to, as the server builds them."""
    from shim.dialects.registry import get_dialect
    from shim.settings import Route, Timeouts
    from shim.upstream.client import UpstreamClient
    from shim.upstream.routing import Resolved

    base, _, path = url.partition("/v1")
    route = Route(upstream=f"{base}/v1")
    resolved = Resolved(route, get_dialect(route.dialect), "fake", "bench-key")
    return UpstreamClient(Timeouts()), resolved, "/" + path.lstrip("/")


async def _load(
    variant: str,
    url: str,
    clients: int,
    seconds: float,
    stream: bool,
    requests: int | None = None,
    warmup: int = 200,
) -> dict[str, float]:
    import httpx

    body = json.dumps({**_CHAT, "stream": True} if stream else _CHAT).encode()
    if variant == "client":
        return await _load_client(url, clients, seconds, body, stream, requests, warmup)
    transport = _transport(variant)
    assert isinstance(transport, httpx.AsyncBaseTransport)
    target = httpx.URL(url)
    headers = {
        "accept": "application/json, text/event-stream",
        "accept-encoding": "identity",
        "content-type": "application/json",
        "user-agent": "bench",
    }
    extensions = {"timeout": httpx.Timeout(30.0).as_dict()}
    done = 0
    chunks = 0
    stop = False

    async def worker() -> None:
        nonlocal done, chunks
        while not stop:
            request = httpx.Request("POST", target, content=body, headers=headers, extensions=extensions)
            response = await transport.handle_async_request(request)
            response.request = request
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
    cpu0, t0 = _cpu(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall, n, c = _cpu() - cpu0, time.perf_counter() - t0, done, chunks
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await transport.aclose()
    return {
        "req_per_s": round(n / wall, 1),
        "cpu_ms_per_req": round(cpu * 1000 / max(n, 1), 4),
        "cpu_share": round(cpu / wall, 2),
        "reads_per_req": round(c / max(n, 1), 1),
    }


async def _load_client(
    url: str, clients: int, seconds: float, body: bytes, stream: bool, requests: int | None, warmup: int = 200
) -> dict[str, float]:
    from shim.upstream.client import UpstreamClient
    from shim.upstream.routing import Resolved

    client, resolved, path = _client(url)
    assert isinstance(client, UpstreamClient) and isinstance(resolved, Resolved)
    done = 0
    chunks = 0
    stop = False
    left = warmup + (requests or 0)  # a fixed count: ``warmup``, then ``requests``
    finished = asyncio.Event()

    async def worker() -> None:
        nonlocal done, chunks, left
        while not stop and (requests is None or left > 0):
            left -= 1
            response = await client.send(resolved, path, body, stream=stream)
            try:
                if stream:
                    async for _ in response.aiter_raw():
                        chunks += 1
                else:
                    chunks += len(response.content) > 0
            finally:
                await response.aclose()
            done += 1
            if requests is not None and done == warmup:
                finished.set()  # warm-up over
        if requests is not None and left <= 0:
            finished.set()

    tasks = [asyncio.create_task(worker()) for _ in range(clients)]
    if requests is not None:
        await finished.wait()
        finished.clear()
        cpu0, t0, start = _cpu(), time.perf_counter(), done
        await asyncio.gather(*tasks)
        cpu, wall, n, c = _cpu() - cpu0, time.perf_counter() - t0, done - start, chunks
    else:
        await asyncio.sleep(0.5)  # warm-up: connections opened
        done = chunks = 0
        cpu0, t0 = _cpu(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall, n, c = _cpu() - cpu0, time.perf_counter() - t0, done, chunks
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

    result = uvloop.run(_load(args.child, args.url, args.clients, args.seconds, args.stream, args.requests))
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--variants", default="httpx,handwritten,httpx-aiohttp,aiohttp,client")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cpu", default="0", help="core of the client under test")
    parser.add_argument("--upstream-cpu", default="1", help="core of the fake upstream")
    parser.add_argument("--child", metavar="VARIANT", help="run one variant in this process")
    parser.add_argument("--url", help="(with --child) the upstream URL")
    parser.add_argument("--stream", action="store_true", help="(with --child) SSE answers")
    parser.add_argument("--requests", type=int, help="(with --child client) a fixed count, see above")
    parser.add_argument("--warmup", type=int, default=200, help="(with --requests) requests before counting")
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
                    print(f"{kind:8} {variant:14} {done.stdout.strip()} load {load}", flush=True)
        finally:
            upstream.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

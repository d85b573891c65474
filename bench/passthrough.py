"""A Python proxy on the shim's framework: Litestar + httpx forwarding bytes, no translation.

    .venv/bin/python -m bench.passthrough --upstream http://127.0.0.1:9100/v1 --port 9200

Same stack and server settings as the shim (uvicorn, uvloop, httptools, one httpx client with the
shim's transport and pool limits), so the gap between this and the shim is what translation costs.
``POST /v1/<path>`` goes to ``<upstream>/<path>``; a streamed answer is relayed chunk by chunk.
The least a proxy costs on this stack, without Litestar, is ``bench/floor.py``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar import Litestar, Request, Response, post
from litestar.response import Stream

from shim.upstream.transport import build_transport

__all__ = ["create_app", "main"]


def create_app(upstream: str) -> Litestar:
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200, keepalive_expiry=60.0)
    client = httpx.AsyncClient(
        # The shim's upstream transport, so the gap stays "what translation costs" (httpx's own
        # transport cost this proxy 5.7 ms of CPU per request at 64 clients: bench/README.md).
        transport=build_transport(limits),
        timeout=httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=30.0),
        limits=limits,
    )
    base = upstream.rstrip("/")
    logging.getLogger("httpx").setLevel(
        logging.WARNING
    )  # a log line per request would cost more than the relay

    async def relay(response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    @post("/v1/{path:path}", status_code=200)
    async def forward(request: Request[Any, Any, Any], path: str) -> Response[Any]:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        req = client.build_request("POST", base + path, content=await request.body(), headers=headers)
        response = await client.send(req, stream=True)
        media_type = response.headers.get("content-type", "application/json")
        if media_type.startswith("text/event-stream"):
            return Stream(relay(response), media_type=media_type, status_code=response.status_code)
        body = await response.aread()
        await response.aclose()
        return Response(content=body, media_type=media_type, status_code=response.status_code)

    async def shutdown() -> None:
        await client.aclose()

    return Litestar(route_handlers=[forward], on_shutdown=[shutdown], openapi_config=None, debug=False)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="plain pass-through proxy (no translation)")
    parser.add_argument("--upstream", required=True, help="upstream base URL ending in /v1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        log_level="warning",
        loop="auto",
        http="auto",
    )


if __name__ == "__main__":
    main()

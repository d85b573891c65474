"""ASGI plumbing the suite's scripted upstreams share (plain ASGI, no framework, so each one runs
in-process under ``httpx.ASGITransport`` or as ``python SCRIPT PORT`` under uvicorn)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["lifespan", "read_body", "run", "sample", "send_chat_stream", "send_json", "send_stream"]


async def lifespan(receive: Any, send: Any) -> None:
    """Answer the lifespan protocol (uvicorn's startup and shutdown) until shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def send_json(send: Any, status: int, payload: Any) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def send_stream(send: Any, frames: Iterable[bytes], last: bytes = b"") -> None:
    """A 200 ``text/event-stream``: each SSE frame, then ``last`` with the end of the body."""
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for frame in frames:
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": last, "more_body": False})


async def send_chat_stream(send: Any, chunks: Iterable[dict[str, Any]]) -> None:
    """Chat Completions chunks as SSE ``data:`` frames, ended by ``data: [DONE]``."""
    frames = (b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks)
    await send_stream(send, frames, b"data: [DONE]\n\n")


def sample(schema: dict[str, Any], text: str = "San Francisco") -> Any:
    """A value that fits a JSON schema: an enum's first value, every required property, one array
    item, 1, true, and ``text`` for a string."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {k: sample(props[k], text) for k in required if k in props}
    if kind == "array":
        return [sample(schema.get("items", {"type": "string"}), text)]
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    return text


def run(app: Any) -> None:
    """``python SCRIPT PORT``: serve ``app`` on 127.0.0.1:PORT."""
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

"""A transparent loopback proxy in front of a real upstream that records every JSON request body.

The end-to-end chain tests put it between the shim and llama.cpp, so they can assert what the
model was really sent (the messages the shim rebuilt from the store) instead of trusting a
270M model's answer. Responses are relayed unchanged and as they arrive (chunked), so SSE
streams stay streams.

    with RecordingProxy("http://127.0.0.1:8000/v1") as proxy:
        proxy.url        # http://127.0.0.1:PORT/v1, give it to the shim as its upstream
        proxy.bodies     # decoded request bodies, oldest first
        proxy.exchanges  # (request body bytes, status, content type, answer bytes as relayed)

Fixture recorders use ``exchanges``: the answer bytes are kept exactly as relayed to the client.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["Exchange", "RecordingProxy"]

# Headers that describe one hop, not the message: the proxy sets its own framing.
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass(frozen=True)
class Exchange:
    """One relayed request and the answer's bytes, exactly as they were passed on."""

    request: bytes
    status: int
    content_type: str
    answer: bytes


class RecordingProxy:
    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path.rstrip("/")
        self._lock = threading.Lock()
        self._bodies: list[dict[str, Any]] = []
        self._exchanges: list[Exchange] = []
        self._client = httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="recording-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._base_path}"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._bodies)

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def clear(self) -> None:
        with self._lock:
            self._bodies.clear()
            self._exchanges.clear()

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _record(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            return
        if isinstance(body, dict):
            with self._lock:
                self._bodies.append(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows stderr
                return

            def _relay(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                if raw:
                    proxy._record(raw)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                request = proxy._client.build_request(
                    self.command, proxy._origin + self.path, headers=headers, content=raw
                )
                upstream = proxy._client.send(request, stream=True)
                answer = bytearray()
                try:
                    self.send_response(upstream.status_code)
                    for name, value in upstream.headers.items():
                        if name.lower() not in _HOP:
                            self.send_header(name, value)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for chunk in upstream.iter_bytes():
                        if chunk:
                            answer += chunk
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                finally:
                    upstream.close()
                    exchange = Exchange(
                        raw, upstream.status_code, upstream.headers.get("content-type", ""), bytes(answer)
                    )
                    with proxy._lock:
                        proxy._exchanges.append(exchange)

            do_GET = do_POST = _relay

        return Handler

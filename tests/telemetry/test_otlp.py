"""Traces end to end: the shim as ``shim serve`` builds it, configured only by OTEL_* variables,
exports over OTLP/HTTP to a receiver this test runs, and the protobuf it sent is decoded with
``opentelemetry-proto``. And the shim without the ``otel`` extra: it imports, serves, and says why
there are no traces."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from shim import tracing
from shim.settings import load_settings, tracing_wanted
from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import LiveShim

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class Receiver:
    """An OTLP/HTTP trace receiver on loopback: keeps each POST's path, content type and body."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, bytes]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                posts.append((self.path, self.headers["content-type"], body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


async def test_spans_reach_an_otlp_receiver(
    fault: FaultUpstream, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    previous = tracing.active()
    shim = LiveShim(fault.url)  # create_app reads the variables and starts exporting
    active = tracing.active()
    try:
        assert active is not None and active is not previous
        answer = await shim.client.post(
            "/v1/responses",
            json={"model": "ok", "input": "hi", "stream": True},
            headers={"traceparent": TRACEPARENT},
        )
        assert answer.status_code == 200
        await shim.aclose()
        active.shutdown()  # what the app's shutdown does: the batch is flushed
    finally:
        tracing.use(previous)
    assert receiver.posts, "nothing was exported"
    spans: dict[str, Any] = {}
    resource: dict[str, Any] = {}
    for path, content_type, body in receiver.posts:
        assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
        request = ExportTraceServiceRequest.FromString(body)
        for batch in request.resource_spans:
            resource |= {a.key: _value(a.value) for a in batch.resource.attributes}
            for scope in batch.scope_spans:
                assert scope.scope.name == "shim"
                spans |= {span.name: span for span in scope.spans}
    assert resource["service.name"] == "shim" and resource["deployment.environment"] == "test"
    server, call = spans["POST /v1/responses"], spans["chat ok"]
    assert server.trace_id.hex() == call.trace_id.hex() == TRACE_ID
    assert call.parent_span_id == server.span_id
    attributes = {a.key: _value(a.value) for a in call.attributes}
    assert attributes["gen_ai.usage.input_tokens"] == 3 and attributes["gen_ai.usage.output_tokens"] == 4
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == "ok"


# Runs the shim in a fresh interpreter where every ``opentelemetry`` import fails, as on a machine
# without the extra, and reports what it saw.
WITHOUT_OTEL = textwrap.dedent(
    """
    import asyncio, importlib.abc, logging, sys

    class NoOtel(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    if sys.argv[1] == "block":
        sys.meta_path.insert(0, NoOtel())
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    import httpx
    from shim import tracing
    from shim.http.app import create_app
    from shim.settings import Route, ServerSettings, Settings

    settings = Settings(server=ServerSettings(store="memory://"), routes=(Route(upstream="http://127.0.0.1:9/v1"),))
    app = create_app(settings)

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://shim") as client:
            print("healthz", (await client.get("/healthz")).status_code)
            answer = await client.post("/v1/chat/completions", json={"model": "m", "messages": []})
            print("chat", answer.status_code)

    asyncio.run(main())
    print("active", tracing.active())
    # (redis 8 imports opentelemetry's metrics API itself when it is there: not the shim's doing)
    ours = ("shim.tracing.otel", "opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter")
    print("loaded", [m for m in ours if m in sys.modules])
    """
)


@pytest.mark.parametrize(
    ("block", "endpoint"),
    [
        pytest.param(True, None, id="missing-not-asked"),
        pytest.param(True, "http://127.0.0.1:9", id="missing-asked"),
        pytest.param(False, None, id="installed-not-asked"),  # nothing of it is even imported
    ],
)
def test_without_the_extra(block: bool, endpoint: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL, "block" if block else "allow"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "healthz 200"
    assert lines[1].startswith("chat ")  # the request went its way (the upstream is unreachable: 502)
    assert lines[2:] == ["active None", "loaded []"]
    warned = "traces are off. Install it with: pip install 'shim[otel]'" in done.stderr
    assert warned is (endpoint is not None)


@pytest.mark.parametrize(
    ("variables", "wanted"),
    [
        pytest.param({}, False, id="nothing-set"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True, id="endpoint"),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True, id="traces-endpoint"
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"},
            False,
            id="disabled",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False, id="none"
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            True,
            id="http-protobuf",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': the shim exports OTLP over http/protobuf only",
            id="grpc-refused",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "zipkin"},
            "OTEL_TRACES_EXPORTER='zipkin': the shim exports traces with otlp only (or none)",
            id="zipkin-refused",
        ),
    ],
)
def test_which_variables_turn_traces_on(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], wanted: bool | str
) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    if isinstance(wanted, str):
        with pytest.raises(ValueError, match=re.escape(wanted)):
            load_settings()
        return
    load_settings()  # accepted at start
    assert tracing_wanted() is wanted

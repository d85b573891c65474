"""Record ``fixtures/_recordings/llamacpp-functions/*``: llama-cpp-python's ``chatml-function-calling``.

The upstream is the embedded llama-cpp-python server (Gemma 3 270M Q4_K_M) started with
``--chat_format chatml-function-calling``, the format in which the model picks a tool call or a
message itself (``mappings/llamacpp-python-functions.toml``). Each recording comes from a fixture
folder's ``request.json``: the Open Responses request is translated with the shim's own
``to_chat_request`` under the folder's dialect (``stream`` as the request says, so the dialect
decides whether the Chat request really streams), sent through a ``RecordingProxy``, and the
bytes that crossed the wire are written unchanged:

    _recordings/llamacpp-functions/<name>.request.json    the Chat request body sent
    _recordings/llamacpp-functions/<name>.sse | .json     the answer (a .json for an error too)
    _recordings/llamacpp-functions/<name>.status          only for a status other than 200

Copying them into the fixture folders is a separate ``cp`` (fixtures/README.md).

    .venv/bin/python scripts/record_llamacpp_functions.py [NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shim.cli.embedded import FUNCTIONS_CHAT_FORMAT, EmbeddedUpstream
from shim.core.diagnostics import Diagnostics
from shim.dialects.registry import get_dialect
from shim.translate.chat_request import to_chat_request
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import decode_create_response_body
from tests.support.recording_proxy import RecordingProxy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES = FIXTURES / "responses_over_chat"
OUT = FIXTURES / "_recordings" / "llamacpp-functions"

# recording name -> the fixture folders (dialect/case) whose request.json it answers. Folders
# sharing a recording must translate to the same Chat request bytes (checked before sending).
RECORDINGS: dict[str, tuple[str, ...]] = {
    # The plain `llamacpp` dialect streams tools + "auto": the server refuses with HTTP 500.
    "error_auto_tool_choice_stream": ("llamacpp/error_auto_tool_choice_stream",),
    # The same request under `llamacpp-python-functions` goes unstreamed, streamed or not.
    "tool_call_auto": (
        "llamacpp-python-functions/tool_call_auto",
        "llamacpp-python-functions/tool_call_auto_stream",
    ),
    # No tool_choice: the dialect says "auto" (explicit_tool_choice).
    "tool_call_auto_no_choice": ("llamacpp-python-functions/tool_call_auto_no_choice",),
    # The official compliance suite's tool-calling request (no system message, no tool_choice): the
    # dialect adds the empty system message inside which the format prints the tools
    # (tools_in_system_message), and the model calls get_weather.
    "tool_call_no_system_message": ("llamacpp-python-functions/tool_call_no_system_message",),
    # tool_choice "required" (an HTTP 500 as it is) goes as the object naming the one function
    # (required_tool_choice = "named"): a call even for a greeting.
    "tool_call_required": ("llamacpp-python-functions/tool_call_required",),
    # The model picks the message branch: content "" (the grammar allows only the turn's end).
    "message_auto": ("llamacpp-python-functions/message_auto",),
    # The model copies "ls -la" from the prompt and writes <|im_end|> inside the JSON string:
    # the format stops there, so the arguments come back cut (`{ "cmd": "ls -la`), finish_reason
    # tool_calls (the dialect's close_truncated_arguments).
    "tool_call_arguments_cut": ("llamacpp-python-functions/tool_call_arguments_cut",),
}


def chat_request(case: str) -> bytes:
    """The Chat request body the shim sends upstream for fixture folder ``case``."""
    folder = CASES / case
    body = decode_create_response_body((folder / "request.json").read_bytes())
    assert body.model is not None and isinstance(body.input, str)
    request = to_chat_request(
        body,
        [r.MessageItemParam(role="user", content=body.input)],
        model=body.model,
        dialect=get_dialect(folder.parent.name),
        diags=Diagnostics("ignore"),
        stream=bool(body.stream),
    )
    return c.encode_chat_request(request)


def record(proxy: RecordingProxy, name: str, data: bytes) -> None:
    # Twice, keeping the second: llama-cpp-python is deterministic at temperature 0 once the
    # prompt is cached.
    for _ in range(2):
        proxy.clear()
        with httpx.stream(
            "POST",
            f"{proxy.url}/chat/completions",
            content=data,
            headers={"content-type": "application/json"},
            timeout=300,
        ) as response:
            response.read()
        for _ in range(100):  # the proxy files the exchange after relaying the last byte
            if proxy.exchanges:
                break
            time.sleep(0.05)
    (exchange,) = proxy.exchanges
    if exchange.request != data:
        raise SystemExit(f"{name}: the proxy saw other request bytes than were sent")
    suffix = ".sse" if exchange.content_type.startswith("text/event-stream") else ".json"
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob(f"{name}.*"):
        old.unlink()
    (OUT / f"{name}.request.json").write_bytes(exchange.request)
    (OUT / f"{name}{suffix}").write_bytes(exchange.answer)
    if exchange.status != 200:
        (OUT / f"{name}.status").write_text(f"{exchange.status}\n")
    print(f"{name}: {exchange.status} {name}{suffix} {len(exchange.answer)} bytes: {exchange.answer[:300]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"recordings to make (default: all of {list(RECORDINGS)})")
    args = parser.parse_args()
    unknown = set(args.names) - set(RECORDINGS)
    if unknown:
        parser.error(f"unknown recordings: {sorted(unknown)}")
    todo: dict[str, bytes] = {}
    for name in args.names or RECORDINGS:
        bodies = {case: chat_request(case) for case in RECORDINGS[name]}
        if len(set(bodies.values())) != 1:
            raise SystemExit(f"{name}: the folders translate to different Chat requests: {bodies}")
        todo[name] = next(iter(bodies.values()))
    with (
        tempfile.TemporaryDirectory(prefix="llama-functions-") as tmp,
        EmbeddedUpstream(chat_format=FUNCTIONS_CHAT_FORMAT, log_path=Path(tmp) / "llama.log") as llama,
        RecordingProxy(llama.base_url) as proxy,
    ):
        for name, data in todo.items():
            record(proxy, name, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())

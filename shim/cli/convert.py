"""``shim convert``: recorded traffic of one format → the other, through the same translators.

Six input kinds, detected from the content (``--kind`` overrides): chat request, chat
completion, chat SSE stream, responses request, responses resource, responses SSE stream. A
JSONL file converts record by record. Output goes to stdout or, written whole then renamed, to
``-o FILE``: bad input means exit status 2, ``FILE:LINE: what is wrong``, and nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from shim.core.diagnostics import Diagnostics
from shim.dialects.registry import UnknownDialect, get_dialect
from shim.errors import ShimError
from shim.ids import CountingIds, fixed_clock
from shim.sse import DONE, SSEDecoder
from shim.translate.chat_request import to_chat_request
from shim.translate.history import string_input
from shim.translate.pipeline import ChatToResponsesStream, chat_completion_to_response, run_stream
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import decode_create_response_body, decode_resource

__all__ = ["ConvertError", "convert_text", "detect_kind", "run_convert"]

_json = msgspec.json.Encoder()
_any = msgspec.json.Decoder()
TARGET = {
    "chat-request": "responses",
    "chat-completion": "responses",
    "chat-stream": "responses",
    "responses-request": "chat",
    "responses-resource": "chat",
    "responses-stream": "chat",
}


class ConvertError(Exception):
    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def detect_kind(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith(("data:", "event:", ":")):
        return "responses-stream" if '"type":"response.' in text.replace(" ", "") else "chat-stream"
    try:
        data = _any.decode(stripped)
    except msgspec.DecodeError as exc:
        raise ConvertError(f"not JSON, JSONL or SSE: {exc}") from None
    if not isinstance(data, dict):
        raise ConvertError("expected a JSON object")
    if "messages" in data:
        return "chat-request"
    if "choices" in data or data.get("object") == "chat.completion":
        return "chat-completion"
    if data.get("object") == "response" or ("output" in data and "status" in data):
        return "responses-resource"
    if "input" in data or "instructions" in data:
        return "responses-request"
    raise ConvertError("cannot tell what this is; pass --kind")


def _sse_bytes(events: list[Any]) -> str:
    out = []
    for event in events:
        tag = type(event).__struct_config__.tag
        out.append(f"event: {tag}\ndata: {_json.encode(event).decode()}\n\n")
    return "".join(out) + DONE.decode()


def _chat_sse(chunks: list[Any], tail: bytes | None = None) -> str:
    text = "".join(f"data: {_json.encode(chunk).decode()}\n\n" for chunk in chunks)
    return text + (tail or b"").decode() + DONE.decode()


def _stream_meta(data: bytes, *, resource_key: str | None) -> tuple[str, int]:
    """The model name and creation time a recorded stream states first (``"", 0`` if none).

    Chat streams state them in every chunk (``model``, ``created``); Open Responses streams in
    the resource of their lifecycle events (``resource_key="response"``: ``model``, ``created_at``).
    """
    decoder = SSEDecoder()
    for event in decoder.feed(data) + decoder.finish():
        try:
            obj = _any.decode(event.data)
        except msgspec.DecodeError:
            continue  # ``[DONE]``, or a malformed event the translation itself will report
        if resource_key is not None and isinstance(obj, dict):
            obj = obj.get(resource_key)
        if isinstance(obj, dict) and isinstance(obj.get("model"), str) and obj["model"]:
            created = obj.get("created" if resource_key is None else "created_at")
            return obj["model"], created if isinstance(created, int) else 0
    return "", 0


def convert_text(text: str, kind: str, dialect_name: str, diags: Diagnostics) -> str:
    """One record. Raises ``ConvertError`` (line relative to the record) on bad input."""
    dialect = get_dialect(dialect_name)
    ids = CountingIds()
    data = text.encode()
    if kind == "responses-request":
        body = decode_create_response_body(data)
        req = to_chat_request(
            body,
            string_input(body.input),
            model=body.model or "",
            dialect=dialect,
            diags=diags,
            stream=bool(body.stream),
        )
        return c.encode_chat_request(req).decode()
    if kind == "chat-completion":
        completion = c.decode_completion(data)
        template = r.ResponseResource(
            id="resp_converted", created_at=completion.created, model=completion.model
        )
        resource = chat_completion_to_response(
            template, dialect, data, ids=ids, clock=fixed_clock(completion.created)
        )
        return _json.encode(resource).decode()
    if kind == "chat-stream":
        # A live stream's template is written before the upstream answers; a recording already
        # holds the answer, so its model and creation time are known up front.
        model, created = _stream_meta(data, resource_key=None)
        template = r.ResponseResource(id="resp_converted", created_at=created, model=model)
        stream = ChatToResponsesStream(template, dialect, ids=ids, clock=fixed_clock(created))
        return _sse_bytes(run_stream(stream, [data]))
    from shim.translate import chat_over_responses, responses_request

    if kind == "chat-request":
        chat_req = c.decode_chat_request(data)
        body = responses_request.to_responses_request(
            chat_req, model=chat_req.model, diags=diags, stream=bool(chat_req.stream)
        )
        return responses_request.encode_create_response_body(body).decode()
    if kind == "responses-resource":
        completion_out = chat_over_responses.resource_to_completion(
            data, completion_id="chatcmpl-converted", created=decode_resource(data).created_at, model=None
        )
        return c.encode_completion(completion_out).decode()
    if kind == "responses-stream":
        # ``model=None``: the writer takes it from the stream's ``response.created`` resource.
        _, created = _stream_meta(data, resource_key="response")
        rstream = chat_over_responses.ChatChoiceDriver(
            completion_id="chatcmpl-converted", created=created, model=None
        )
        chunks = rstream.feed(data) + rstream.finish()
        return _chat_sse(chunks)
    raise ConvertError(f"unknown kind {kind!r}")


def _records(text: str, kind: str | None) -> list[tuple[int, str]]:
    """A JSONL file is many records; anything else is one."""
    lines = text.splitlines()
    if kind is None or not kind.endswith("stream"):
        nonblank = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
        # JSONL when the first line is a whole JSON object by itself (a pretty-printed document's
        # first line is not): then a broken line is reported as that line, not as line 1.
        if len(nonblank) > 1:
            try:
                first = _any.decode(nonblank[0][1])
            except msgspec.DecodeError:
                first = None
            if isinstance(first, dict):
                return nonblank
    return [(1, text)]


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def convert_file(
    text: str, *, kind: str | None, to: str, dialect: str, progress: Callable[[int, int], None] | None
) -> tuple[str, list[str]]:
    records = _records(text, kind)
    outputs: list[str] = []
    diags_out: list[str] = []
    for done, (line, record) in enumerate(records, 1):
        try:
            record_kind = kind or detect_kind(record)
            if TARGET[record_kind] != to:
                raise ConvertError(f"this is a {record_kind}; it is already in the {to} format")
            diags = Diagnostics("warn")
            outputs.append(convert_text(record, record_kind, dialect, diags))
            diags_out.extend(f"{line}: {d.kind}: {d.message} ({d.param or '-'})" for d in diags.items)
        except ConvertError as exc:
            raise ConvertError(exc.message, line + exc.line - 1) from None
        except ShimError as exc:
            where = f" at {exc.param}" if exc.param else ""
            raise ConvertError(f"{exc.message}{where}", line) from None
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ConvertError(str(exc), line) from None
        if progress is not None and len(records) > 1:
            progress(done, len(records))
    joiner = "\n" if len(records) > 1 else ""
    body = joiner.join(o.rstrip("\n") if len(records) > 1 else o for o in outputs)
    return body + ("\n" if not body.endswith("\n") else ""), diags_out


def _write_atomic(path: Path, data: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_convert(args: argparse.Namespace) -> int:
    name = "<stdin>" if args.input == "-" else args.input
    try:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{name}: cannot read: {exc}", file=sys.stderr)
        return 2
    try:
        get_dialect(args.dialect)
    except UnknownDialect as exc:
        print(f"shim convert: {exc}", file=sys.stderr)
        return 2
    try:
        output, diags = convert_file(
            text,
            kind=args.kind,
            to=args.to,
            dialect=args.dialect,
            progress=_progress if sys.stderr.isatty() else None,
        )
    except ConvertError as exc:
        print(f"{name}:{exc.line}: {exc.message}", file=sys.stderr)
        return 2
    for line in diags:
        print(f"{name}:{line}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(output)
    else:
        _write_atomic(args.output, output)
    return 0

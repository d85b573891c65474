"""``POST /v1/chat/completions`` on a route whose upstream already speaks Chat Completions.

Raw pass-through by default: the client's body goes upstream unchanged (only ``model`` is
rewritten when the route renames it, and what the route's dialect takes differently from OpenAI
is fitted: ``translate/chat_passthrough_request.py``) and the answer comes back byte for byte. When the route
says ``normalize_chat`` or the client sends ``x-shim-reasoning``, the answer is instead read
with the route's dialect (``ChatStreamReader``: ``<think>`` text in content, vendor reasoning
fields…) and written again by ``ChatStreamWriter`` in the chosen reasoning form, so a client
sees ``reasoning_content`` whatever the vendor does. Normalising reads choice 0 only, so
``n > 1`` always passes through raw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

from shim.core.deltas import ErrorDelta
from shim.core.diagnostics import Diagnostics
from shim.errors import ShimError, UpstreamError, UpstreamInvalidResponse, UpstreamTruncated
from shim.limits import check_chat_body
from shim.sse import DONE, SSEDecoder, encode_data
from shim.translate.chat_passthrough_request import adapt_chat_body, needs_adapting
from shim.translate.chat_reader import ChatStreamReader, read_completion
from shim.translate.chat_writer import ChatStreamWriter, ReasoningMode, error_chunk_bytes
from shim.turns.context import TurnContext
from shim.turns.pump import pump
from shim.upstream import failover
from shim.upstream.redaction import ByteRedactor, redact_bytes
from shim.upstream.routing import Resolved
from shim.wire import chat as c

__all__ = ["NormalizedChunks", "RawChunks", "check", "chunks", "complete", "open_stream", "upstream_body"]

_any = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
_json_check = msgspec.json.Decoder()


def check(ctx: TurnContext, req: c.ChatCompletionRequest) -> None:
    """The request limits, before anything reaches an upstream."""
    check_chat_body(req, ctx.limits)


def upstream_body(raw: bytes, req: c.ChatCompletionRequest, resolved: Resolved, diags: Diagnostics) -> bytes:
    """The client's body, fitted to the route's dialect (array turns llama-cpp-python would read
    as empty, ``max_completion_tokens`` it would ignore…) and model; else byte for byte."""
    adapt = needs_adapting(resolved.dialect.request)
    if resolved.upstream_model == req.model and not adapt:
        return raw
    data = _any.decode(raw)
    data["model"] = resolved.upstream_model
    if adapt:
        adapt_chat_body(data, resolved.dialect.request, diags)
    return _encoder.encode(data)


async def complete(
    ctx: TurnContext,
    raw: bytes,
    req: c.ChatCompletionRequest,
    resolved: Resolved,
    mode: ReasoningMode | None,
    diags: Diagnostics,
) -> bytes:
    """The whole answer, with an echoed upstream key cut out as the streamed path does."""
    response, resolved = await failover.send(
        ctx.upstream,
        resolved,
        "/chat/completions",
        lambda target: upstream_body(raw, req, target, diags),
        stream=False,
    )
    if mode is None or (req.n or 1) > 1:
        try:  # forwarded as is, but a 200 that is not even JSON is the upstream's failure
            _json_check.decode(response.content)
        except msgspec.DecodeError as exc:
            raise UpstreamInvalidResponse(f"The upstream's answer is not JSON: {exc}") from None
        return redact_bytes(response.content, resolved.upstream_key)
    try:
        completion = c.decode_completion(response.content)
    except msgspec.DecodeError as exc:
        raise UpstreamInvalidResponse(f"The upstream's answer is not a Chat completion: {exc}") from None
    writer = ChatStreamWriter(
        completion_id=completion.id, created=completion.created, model=completion.model, reasoning=mode
    )
    writer.feed_all(read_completion(completion, resolved.dialect.response, ctx.ids))
    writer.finish()
    if writer.error is not None:
        raise UpstreamError(writer.error.message, code=writer.error.code or "upstream_error")
    out = writer.completion
    out.system_fingerprint = completion.system_fingerprint
    return redact_bytes(c.encode_completion(out), resolved.upstream_key)


async def open_stream(
    ctx: TurnContext, raw: bytes, req: c.ChatCompletionRequest, resolved: Resolved, diags: Diagnostics
) -> tuple[httpx.Response, Resolved]:
    """The open answer and the upstream that gave it (a fallback's, after a failover)."""
    return await failover.send(
        ctx.upstream,
        resolved,
        "/chat/completions",
        lambda target: upstream_body(raw, req, target, diags),
        stream=True,
    )


def chunks(
    ctx: TurnContext,
    response: httpx.Response,
    req: c.ChatCompletionRequest,
    resolved: Resolved,
    mode: ReasoningMode | None,
) -> AsyncIterator[list[bytes] | None]:
    """The pump over the upstream's stream: raw, or re-read and written in ``mode``. Passed
    through as the upstream sent it, so an echoed upstream key is cut out by the pump."""
    translation: RawChunks | NormalizedChunks = (
        RawChunks() if mode is None or (req.n or 1) > 1 else NormalizedChunks(ctx, req, resolved, mode)
    )
    return pump(response, translation, ctx.timing, ByteRedactor(resolved.upstream_key), last=True)


def _error_chunk(error: UpstreamError) -> bytes:
    return encode_data(error_chunk_bytes(ErrorDelta.of(error)))


class RawChunks:
    """The upstream's bytes as they come; a stream that ends without ``[DONE]`` gets a final
    error chunk, so the client can tell a cut-off answer from a whole one."""

    stopped = False

    def __init__(self) -> None:
        self.tail = b""
        self.done = False

    def start(self) -> list[bytes]:
        return []

    def feed(self, data: bytes) -> list[bytes]:
        if not self.done:  # cheap: slices of at most 12 bytes are copied
            tail = self.tail
            self.done = b"data: [DONE]" in data or b"data: [DONE]" in tail + data[:12]
            self.tail = (tail + data[-12:])[-12:]
        return [data]

    def finish(self) -> list[bytes]:
        if self.done:
            return []
        return [self._closing() + _error_chunk(UpstreamTruncated())]

    def fail(self, error: UpstreamError) -> list[bytes]:
        return [self._closing() + _error_chunk(error)]

    def _closing(self) -> bytes:
        """What ends a half-sent event (the upstream's last bytes), so the final error chunk that
        follows is a line of its own, whether the stream was cut, broke or hit a limit."""
        return b"" if not self.tail or self.tail.endswith(b"\n\n") else b"\n\n"

    def unstored(self, tail: list[bytes], error: ShimError) -> list[bytes]:
        return tail


class NormalizedChunks:
    """The upstream stream read with the route's dialect and written again in ``mode``."""

    stopped = False

    def __init__(
        self, ctx: TurnContext, req: c.ChatCompletionRequest, resolved: Resolved, mode: ReasoningMode
    ) -> None:
        options = req.stream_options
        self.writer = ChatStreamWriter(
            completion_id=ctx.ids("chatcmpl"),
            created=ctx.clock(),
            model=req.model,
            reasoning=mode,
            include_usage=bool(options is not None and options.include_usage),
        )
        self.decoder = SSEDecoder()
        self.reader = ChatStreamReader(resolved.dialect.response, ctx.ids)

    def start(self) -> list[bytes]:
        return self._encode(self.writer.start())

    def feed(self, data: bytes) -> list[bytes]:
        writer, reader = self.writer, self.reader
        out: list[c.ChatCompletionChunk] = []
        for event in self.decoder.feed(data):
            out += writer.feed_all(reader.feed_data(event.data))
        return self._encode(out)

    def finish(self) -> list[bytes]:
        writer, reader = self.writer, self.reader
        tail: list[c.ChatCompletionChunk] = []
        for event in self.decoder.finish():
            tail += writer.feed_all(reader.feed_data(event.data))
        if not reader.saw_done and not reader.saw_finish:
            error = UpstreamTruncated()
            writer.fail(ErrorDelta.of(error))
        else:
            tail += writer.feed_all(reader.finish()) + writer.finish()
        return self._end(tail)

    def fail(self, error: UpstreamError) -> list[bytes]:
        self.writer.fail(ErrorDelta.of(error))
        return self._end([])

    def unstored(self, tail: list[bytes], error: ShimError) -> list[bytes]:
        return tail

    def _end(self, tail: list[c.ChatCompletionChunk]) -> list[bytes]:
        out = self._encode(tail)
        if self.writer.error is not None:
            out.append(encode_data(error_chunk_bytes(self.writer.error)))
        return [*out, DONE]

    @staticmethod
    def _encode(chunks: list[c.ChatCompletionChunk]) -> list[bytes]:
        return [encode_data(c.encode_chunk(chunk)) for chunk in chunks]

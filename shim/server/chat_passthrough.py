"""``POST /v1/chat/completions`` on a route whose upstream already speaks Chat Completions.

Raw pass-through by default: the client's body goes upstream unchanged (only ``model`` is
rewritten when the route renames it) and the answer comes back byte for byte. When the route
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
from shim.errors import UpstreamError
from shim.ids import Clock, IdFactory
from shim.routing import Resolved
from shim.server.keepalive import with_keepalive
from shim.sse import DONE, KEEPALIVE, SSEDecoder, encode_data
from shim.translate.chat_reader import ChatStreamReader, read_completion
from shim.translate.chat_writer import ChatStreamWriter, ReasoningMode, error_chunk_bytes
from shim.upstream import UpstreamClient, stream_failure
from shim.wire import chat as c

__all__ = ["ChatPassthrough"]

_any = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def _closing(tail: bytes) -> bytes:
    """What ends a half-sent event (the upstream's last bytes), so the shim's own final chunk
    that follows is a line of its own, whether the stream was cut, broke or hit a limit."""
    return b"" if not tail or tail.endswith(b"\n\n") else b"\n\n"


def upstream_body(raw: bytes, req: c.ChatCompletionRequest, resolved: Resolved) -> bytes:
    if resolved.upstream_model == req.model:
        return raw
    data = _any.decode(raw)
    data["model"] = resolved.upstream_model
    return _encoder.encode(data)


_json_check = msgspec.json.Decoder()


class ChatPassthrough:
    def __init__(
        self, upstream: UpstreamClient, ids: IdFactory, clock: Clock, keepalive: float, idle: float
    ) -> None:
        self.upstream = upstream
        self.ids = ids
        self.clock = clock
        self.keepalive = keepalive
        self.idle = idle

    async def complete(
        self, raw: bytes, req: c.ChatCompletionRequest, resolved: Resolved, mode: ReasoningMode | None
    ) -> bytes:
        response = await self.upstream.send(
            resolved, "/chat/completions", upstream_body(raw, req, resolved), stream=False
        )
        if mode is None or (req.n or 1) > 1:
            try:  # forwarded as is, but a 200 that is not even JSON is the upstream's failure
                _json_check.decode(response.content)
            except msgspec.DecodeError as exc:
                raise UpstreamError(
                    f"The upstream's answer is not JSON: {exc}", code="upstream_invalid_response"
                ) from None
            return response.content
        try:
            completion = c.decode_completion(response.content)
        except msgspec.DecodeError as exc:
            raise UpstreamError(
                f"The upstream's answer is not a Chat completion: {exc}", code="upstream_invalid_response"
            ) from None
        writer = ChatStreamWriter(
            completion_id=completion.id, created=completion.created, model=completion.model, reasoning=mode
        )
        writer.feed_all(read_completion(completion, resolved.dialect.response, self.ids))
        writer.finish()
        if writer.error is not None:
            raise UpstreamError(writer.error.message, code=writer.error.code or "upstream_error")
        out = writer.completion
        out.system_fingerprint = completion.system_fingerprint
        return c.encode_completion(out)

    async def open_stream(
        self, raw: bytes, req: c.ChatCompletionRequest, resolved: Resolved
    ) -> httpx.Response:
        return await self.upstream.send(
            resolved, "/chat/completions", upstream_body(raw, req, resolved), stream=True
        )

    async def raw_chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The upstream's bytes as they come; a stream that ends without ``[DONE]`` gets a final
        error chunk, so the client can tell a cut-off answer from a whole one."""
        tail, done = b"", False
        try:
            async for data in with_keepalive(response.aiter_raw(), self.keepalive, self.idle):
                if data is not None and not done:  # cheap: slices of at most 12 bytes are copied
                    done = b"data: [DONE]" in data or b"data: [DONE]" in tail + data[:12]
                    tail = (tail + data[-12:])[-12:]
                yield KEEPALIVE if data is None else data
            if not done:
                message, code = "The upstream stream ended unexpectedly.", "upstream_stream_truncated"
                yield _closing(tail) + encode_data(error_chunk_bytes(ErrorDelta(message, code=code)))
        except (httpx.TimeoutException, TimeoutError, httpx.TransportError) as exc:
            message, code = stream_failure(exc)  # idle/total timeout, reset, size limit
            yield _closing(tail) + encode_data(error_chunk_bytes(ErrorDelta(message, code=code)))
        finally:
            await response.aclose()

    async def normalized_chunks(
        self, response: httpx.Response, req: c.ChatCompletionRequest, resolved: Resolved, mode: ReasoningMode
    ) -> AsyncIterator[bytes]:
        """The upstream stream read with the dialect and written again in ``mode``."""
        options = req.stream_options
        writer = ChatStreamWriter(
            completion_id=self.ids("chatcmpl"),
            created=self.clock(),
            model=req.model,
            reasoning=mode,
            include_usage=bool(options is not None and options.include_usage),
        )
        decoder = SSEDecoder()
        reader = ChatStreamReader(resolved.dialect.response, self.ids)
        chunks: list[c.ChatCompletionChunk] = writer.start()
        try:
            for chunk in chunks:
                yield encode_data(c.encode_chunk(chunk))
            try:
                async for data in with_keepalive(response.aiter_raw(), self.keepalive, self.idle):
                    if data is None:
                        yield KEEPALIVE
                        continue
                    for event in decoder.feed(data):
                        for chunk in writer.feed_all(reader.feed_data(event.data)):
                            yield encode_data(c.encode_chunk(chunk))
                tail: list[c.ChatCompletionChunk] = []
                for event in decoder.finish():
                    tail += writer.feed_all(reader.feed_data(event.data))
                if not reader.saw_done and not reader.saw_finish:
                    writer.fail(
                        ErrorDelta(
                            "The upstream stream ended unexpectedly.", code="upstream_stream_truncated"
                        )
                    )
                else:
                    tail += writer.feed_all(reader.finish()) + writer.finish()
                for chunk in tail:
                    yield encode_data(c.encode_chunk(chunk))
            except (httpx.TimeoutException, TimeoutError, httpx.TransportError) as exc:
                message, code = stream_failure(exc)
                writer.fail(ErrorDelta(message, code=code))
            if writer.error is not None:
                yield encode_data(error_chunk_bytes(writer.error))
            yield DONE
        finally:
            await response.aclose()

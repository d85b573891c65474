"""The text chunks of one Chat stream differ only in their text: read them by slicing (issue 18).

An upstream writes every text chunk of a stream the same way, for example

    {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",
     "choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}

Decoding each of them into structs was about half of the Chat reader's cost per chunk. So once a
chunk has been decoded the long way and found *plain* (``ChatStreamReader.feed`` would make
nothing of it but its text), the text's place in it is learnt: a ``TextTemplate`` keeps the
characters before and after the text's JSON string. A later chunk that starts and ends with
exactly those characters, with exactly one JSON string between them, decodes to the same chunk
with that string as its text, because JSON is context-free: a string value can be swapped for
another without changing anything else. ``learn`` proves the place before it trusts it: the chunk
with a probe string put there must decode to the learnt chunk with the probe as its content.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from shim.wire import chat as c

__all__ = ["TextTemplate", "is_plain", "learn"]

_encode = msgspec.json.Encoder().encode
_PROBE = "\x00shim-probe\x00"
_PROBE_JSON = _encode(_PROBE).decode()
_KEYS = ('"content":', '"content": ')  # compact, and as Python's json module writes it


class TextTemplate(msgspec.Struct, frozen=True, gc=False):
    head: str  # everything before the text's JSON string
    tail: str  # everything after it


def is_plain(chunk: c.ChatCompletionChunk, reasoning_fields: tuple[str, ...]) -> bool:
    """One choice (index 0) whose delta holds text and nothing else ``ChatStreamReader.feed``
    reads: no reasoning, refusal, tool call, logprobs, finish reason or usage."""
    if len(chunk.choices) != 1 or isinstance(chunk.usage, c.CompletionUsage):
        return False
    choice = chunk.choices[0]
    delta = choice.delta
    if choice.index != 0 or choice.logprobs or choice.finish_reason or not isinstance(delta.content, str):
        return False
    if delta.refusal or delta.tool_calls or delta.function_call is not None:
        return False
    return not any(isinstance(v, str) and v for v in (getattr(delta, f) for f in reasoning_fields))


def learn(
    data: str, chunk: c.ChatCompletionChunk, decode: Callable[[str], c.ChatCompletionChunk]
) -> TextTemplate | None:
    """The template of ``data`` (already decoded into the plain ``chunk`` by ``decode``), or
    ``None`` if the text's JSON string cannot be found as written (other escapes, odd spacing)."""
    content = chunk.choices[0].delta.content
    token = _encode(content).decode()
    for key in _KEYS:
        at = data.find(key + token)
        if at < 0:
            continue
        start = at + len(key)
        head, tail = data[:start], data[start + len(token) :]
        try:
            probed = decode(head + _PROBE_JSON + tail)
        except msgspec.DecodeError:
            continue
        delta = probed.choices[0].delta if len(probed.choices) == 1 else None
        if delta is None or delta.content != _PROBE:
            continue
        delta.content = content
        if probed == chunk:
            return TextTemplate(head, tail)
    return None

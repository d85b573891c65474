"""What an upstream answer says about itself: its id, model, token usage and finish reasons, read
from the bytes as they pass (``AnswerReader``), for the upstream call's span and for settling a
key's token count (docs/rate-limits.md).

It reads OpenAI's own fields (Chat ``usage.prompt_tokens`` / ``completion_tokens`` and
``choices[].finish_reason``; Responses ``usage.input_tokens`` / ``output_tokens``, ``status`` and
``incomplete_details``) and decodes only what can hold them: in a stream, the first event (the
model), events naming ``usage`` or a non-null ``finish_reason``, and a Responses stream's terminal
event; everything else is skipped with a substring test. What it cannot read (a vendor's own usage
fields, a body that is no JSON) leaves the values unset: the translation, not this, reports bad
answers. With ``content`` it also keeps the answer's text (the operator asked for it in spans).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["Answer", "AnswerReader"]

_DATA = b"data:"
_TERMINAL = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')
_MAX_WHOLE = 64 * 1024 * 1024  # a JSON answer kept for reading at its end (the client's own limit is lower)
_MAX_TEXT = 1024 * 1024  # captured completion text per answer


class _ChatUsage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    finish_reason: str | None = None
    index: int = 0
    delta: _Delta | None = None
    message: _Delta | None = None


class _ChatBody(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    choices: list[_Choice] = []
    usage: _ChatUsage | None = None


class _ResponsesUsage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Incomplete(msgspec.Struct):
    reason: str | None = None


class _Resource(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    status: str | None = None
    usage: _ResponsesUsage | None = None
    incomplete_details: _Incomplete | None = None
    output: list[Any] = []


class _ResponsesEvent(msgspec.Struct):
    type: str = ""
    response: _Resource | None = None


_chat = msgspec.json.Decoder(_ChatBody)
_resource = msgspec.json.Decoder(_Resource)
_event = msgspec.json.Decoder(_ResponsesEvent)
_encode = msgspec.json.Encoder().encode


class Answer(msgspec.Struct, kw_only=True):
    id: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: list[str] = []
    output_text: str | None = None  # with ``content`` only: the text (Chat) or output items' JSON


def _status_reason(resource: _Resource) -> str | None:
    """A Responses status as a GenAI finish reason: ``completed`` → ``stop``, an incomplete
    answer its reason (``max_output_tokens``, ``content_filter``), ``failed`` → ``error``."""
    if resource.status == "completed":
        return "stop"
    if resource.status == "incomplete":
        details = resource.incomplete_details
        return details.reason if details is not None and details.reason else "incomplete"
    if resource.status == "failed":
        return "error"
    return resource.status


class AnswerReader:
    """Bytes of one answer in (``feed``), its ``Answer`` out (``finish``). ``kind`` is the upstream
    format (the route's kind); ``stream`` whether the body is SSE (else one JSON document)."""

    def __init__(self, kind: Literal["chat", "responses"], *, stream: bool, content: bool = False) -> None:
        self.kind = kind
        self.stream = stream
        self.content = content
        self.answer = Answer()
        self._pending = b""
        self._whole = bytearray()
        self._text: dict[int, list[str]] = {}
        self._reasons: dict[int, str] = {}

    def feed(self, data: bytes) -> None:
        if not self.stream:
            if len(self._whole) < _MAX_WHOLE:
                self._whole += data
            return
        buffer = self._pending + data if self._pending else data
        end = buffer.rfind(b"\n")
        if end < 0:
            self._pending = buffer if len(buffer) < _MAX_WHOLE else b""
            return
        self._pending = buffer[end + 1 :]
        self._lines(buffer[:end])

    def finish(self) -> Answer:
        if not self.stream:
            self.whole(bytes(self._whole))
        elif self._pending:
            self._lines(self._pending)
            self._pending = b""
        answer = self.answer
        if self._reasons:
            answer.finish_reasons = [self._reasons[k] for k in sorted(self._reasons)]
        if self._text:
            answer.output_text = "".join("".join(self._text[k]) for k in sorted(self._text))
        return answer

    def whole(self, body: bytes) -> None:
        """A whole (unstreamed) answer's body."""
        try:
            if self.kind == "chat":
                self._chat_body(_chat.decode(body))
            else:
                self._resource(_resource.decode(body))
        except msgspec.DecodeError:
            pass

    def _wanted(self, data: bytes) -> bool:
        """Whether ``data`` (a block of lines, or one) may hold something to read: a substring
        test, so most events of a stream are never decoded here."""
        if self.kind == "responses":
            return any(marker in data for marker in _TERMINAL)
        return (
            self.content
            or self.answer.model is None
            or b'"usage":{' in data  # not `"usage":null`, which some servers put in every chunk
            or b'"usage": {' in data
            or data.count(b'"finish_reason"')
            > data.count(b'"finish_reason":null') + data.count(b'"finish_reason": null')
        )

    def _lines(self, block: bytes) -> None:
        if not self._wanted(block):
            return
        for line in block.split(b"\n"):
            if not line.startswith(_DATA) or not self._wanted(line):
                continue
            data = line[len(_DATA) :].strip()
            if not data or data == b"[DONE]":
                continue
            try:
                if self.kind == "chat":
                    self._chat_body(_chat.decode(data))
                elif any(marker in data for marker in _TERMINAL):
                    event = _event.decode(data)
                    if event.response is not None:
                        self._resource(event.response)
            except msgspec.DecodeError:
                continue

    def _chat_body(self, body: _ChatBody) -> None:
        answer = self.answer
        answer.id = answer.id or body.id
        answer.model = answer.model or body.model
        if body.usage is not None:
            answer.input_tokens = body.usage.prompt_tokens
            answer.output_tokens = body.usage.completion_tokens
        for choice in body.choices:
            if choice.finish_reason:
                self._reasons[choice.index] = choice.finish_reason
            part = choice.delta or choice.message
            if self.content and part is not None and part.content:
                pieces = self._text.setdefault(choice.index, [])
                if sum(len(p) for p in pieces) < _MAX_TEXT:
                    pieces.append(part.content)

    def _resource(self, resource: _Resource) -> None:
        answer = self.answer
        answer.id = resource.id or answer.id
        answer.model = resource.model or answer.model
        if resource.usage is not None:
            answer.input_tokens = resource.usage.input_tokens
            answer.output_tokens = resource.usage.output_tokens
        reason = _status_reason(resource)
        if reason:
            self._reasons[0] = reason
        if self.content and resource.output:
            self._text[0] = [_encode(resource.output).decode()[:_MAX_TEXT]]

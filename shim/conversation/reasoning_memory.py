"""Reasoning continuity for Chat clients served over a Responses upstream.

A Chat client resends its whole history and drops the reasoning (it never saw the encrypted
part at all). So for every assistant turn the shim produces it remembers the reasoning items of
that turn and the upstream's response id, under a key made from the caller's scope, a digest of
the whole history before the turn (``prefix_digests``) and what the client will send back (the
message text and its tool calls' ids and names; arguments are left out because clients
re-serialise them). When the same assistant message comes back after the same history, the items
are put back in front of it, so a reasoning model keeps its chain of thought. The history is part
of the key because short answers ("Done.") repeat across conversations: without it one
conversation's reasoning would be sent upstream in another's.

``prefix`` in the record also lets a stateful upstream continue from ``previous_response_id``
with only the new messages, when the history is provably the same one the upstream has.
"""

from __future__ import annotations

import asyncio
import hashlib

import msgspec

from shim.store.backends import KeyValue
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = ["ReasoningMemory", "TurnRecord", "assistant_key", "prefix_digests"]

TTL = 7 * 24 * 3600.0

_json = msgspec.json.Encoder()


class TurnRecord(msgspec.Struct, kw_only=True):
    reasoning: list[r.ItemParam] = []
    upstream_id: str | None = None  # set when the upstream stored this turn (stateful routes)
    prefix: str = ""  # prefix_digests(messages)[k] of the request that produced the turn
    family: str | None = None  # the dialect family that made the reasoning (upstream/families.py)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TurnRecord)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(getattr(p, "text", "") or getattr(p, "refusal", "") or "" for p in content)
    return ""


def assistant_key(content: object, calls: list[tuple[str, str]]) -> str:
    """What identifies an assistant turn the client sends back."""
    return hashlib.sha256(_json.encode([_text(content), calls])).hexdigest()[:40]


def _calls_of(msg: c.ChatCompletionAssistantMessageParam) -> list[tuple[str, str]]:
    out = []
    for call in msg.tool_calls or ():
        name = call.function.name if isinstance(call, c.ChatCompletionMessageFunctionToolCallParam) else ""
        out.append((call.id, name))
    return out


def message_key(msg: c.ChatCompletionAssistantMessageParam) -> str:
    return assistant_key(msg.content, _calls_of(msg))


def completion_key(message: c.ChatCompletionMessage) -> str:
    calls = message.tool_calls if isinstance(message.tool_calls, list) else []
    return assistant_key(
        message.content, [(t.id or "", t.function.name if t.function else "") for t in calls]
    )


def prefix_digests(messages: list[c.ChatCompletionMessageParam]) -> list[str]:
    """``out[k]`` is a digest of ``messages[:k]``; assistant turns count by their key only."""
    h = hashlib.sha256()
    out = [h.hexdigest()[:40]]
    for msg in messages:
        if isinstance(msg, c.ChatCompletionAssistantMessageParam):
            h.update(b"A" + message_key(msg).encode())
        else:
            h.update(b"M" + _json.encode(msg))
        out.append(h.copy().hexdigest()[:40])
    return out


class ReasoningMemory:
    def __init__(self, backend: KeyValue, ttl: float = TTL) -> None:
        self.backend = backend
        self.ttl = ttl

    @staticmethod
    def _key(scope: str, prefix: str, key: str) -> str:
        return f"chatturn:{scope}:{prefix}:{key}"

    async def recall(
        self, scopes: tuple[str, ...], messages: list[c.ChatCompletionMessageParam]
    ) -> dict[int, TurnRecord]:
        """Records for the assistant messages of ``messages``, by message index. ``scopes``: the
        caller's current scope, then its scopes under previous secrets (shim.conversation.keyring)."""
        prefixes = prefix_digests(messages)
        missing = {
            i: message_key(m)
            for i, m in enumerate(messages)
            if isinstance(m, c.ChatCompletionAssistantMessageParam)
        }
        out: dict[int, TurnRecord] = {}
        for scope in scopes:
            if not missing:
                break
            wanted = list(missing.items())
            found = await asyncio.gather(
                *(self.backend.get(self._key(scope, prefixes[i], k)) for i, k in wanted)
            )
            for (i, _), raw in zip(wanted, found, strict=True):
                if raw is None:
                    continue
                try:
                    out[i] = _decoder.decode(raw)
                except msgspec.DecodeError:
                    continue  # a record from an incompatible version reads as missing
                del missing[i]
        return out

    async def remember(self, scope: str, message: c.ChatCompletionMessage, record: TurnRecord) -> None:
        """``record.prefix`` is the digest of the request's whole history: the turn's own prefix
        when the client sends it back."""
        if not record.reasoning and record.upstream_id is None:
            return
        key = self._key(scope, record.prefix, completion_key(message))
        await self.backend.set(key, _encoder.encode(record), self.ttl)

"""Per-key rate limits: requests and tokens per minute for each shim key (docs/rate-limits.md).

``[server.rate_limits]`` sets the defaults and ``[[server.rate_limits.keys]]`` one key's own; a
key is a shim key (``api_keys``), or without them whatever credential the client sends (no
credential: one shared bucket). Counted by ``shim.store.rate_counters`` (Redis when the store is
Redis, so replicas share the counts) under a keyed hash of the key, never the key itself.

A turn — ``POST /v1/responses``, ``/v1/chat/completions``, ``/v1/responses/compact`` or one
WebSocket ``response.create`` — costs one request and an estimate of its tokens up front (the
body's bytes / 4, plus the output limit it asks for times ``n``); when it ends, the estimate is
replaced by the tokens its upstream answers reported (``shim.tracing`` reads their ``usage``): a
turn no upstream answered gives its estimate back; one whose answers reported no usage (a Chat
stream without ``include_usage``) keeps it; a background turn keeps it too (it runs after the
request ends). Refused: 429 in OpenAI's envelope (``type`` ``requests`` or ``tokens``, code
``rate_limit_exceeded``) with ``retry-after``. Every answer to a limited turn carries OpenAI's
``x-ratelimit-limit-*``, ``x-ratelimit-remaining-*`` and ``x-ratelimit-reset-*`` headers.

If the counters fail (Redis down), requests pass uncounted, with a warning: the limits protect
upstreams, and a store outage must not stop turns that need no store.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from shim.errors import AuthenticationError, RateLimited, ShimError
from shim.http.guards import ASGIApp, Message, Receive, Scope, Send, replaying, send_error
from shim.settings import RateLimits
from shim.store.rate_counters import Decision, RateCounters, Window
from shim.telemetry import RequestRecord, current_record
from shim.upstream.routing import bearer

__all__ = [
    "LIMITED_PATHS",
    "Admission",
    "RateLimit",
    "RateLimiter",
    "RequestsRateLimited",
    "TokensRateLimited",
    "estimate_tokens",
    "reset_text",
]

log = logging.getLogger("shim.ratelimit")

LIMITED_PATHS = frozenset({"/v1/responses", "/v1/chat/completions", "/v1/responses/compact"})
_BYTES_PER_TOKEN = 4  # OpenAI's rule of thumb for English text; JSON syntax makes it an overestimate


class RequestsRateLimited(RateLimited):
    type = "requests"


class TokensRateLimited(RateLimited):
    type = "tokens"


class _Ask(msgspec.Struct):
    """What a body says about its own size: its output limit and its number of choices."""

    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    max_output_tokens: int | None = None
    n: int | None = None
    background: bool | None = None


_ask = msgspec.json.Decoder(_Ask)


def _read_ask(body: bytes) -> _Ask:
    try:
        return _ask.decode(body)
    except msgspec.DecodeError:  # the handler answers a bad body; this only estimates
        return _Ask()


def estimate_tokens(body: bytes) -> int:
    """Tokens charged before the turn: its input (bytes / 4) and the output it may ask for."""
    ask = _read_ask(body)
    output = ask.max_completion_tokens or ask.max_tokens or ask.max_output_tokens or 0
    choices = ask.n if ask.n and ask.n > 1 else 1
    return math.ceil(len(body) / _BYTES_PER_TOKEN) + max(0, output) * choices


def reset_text(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    ms = math.ceil(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


def _headers(decision: Decision) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, window in (("requests", decision.requests), ("tokens", decision.tokens)):
        if window is not None:
            out[f"x-ratelimit-limit-{name}"] = str(window.limit)
            out[f"x-ratelimit-remaining-{name}"] = str(window.remaining)
            out[f"x-ratelimit-reset-{name}"] = reset_text(window.reset)
    return out


@dataclass
class Admission:
    """One admitted turn: what it was charged, and the headers its answer carries."""

    bucket: str
    tpm: int
    tokens: int
    background: bool
    headers: dict[str, str]


class RateLimiter:
    def __init__(self, settings: RateLimits, counters: RateCounters, bucket_of: Callable[[str | None], str]):
        self.settings = settings
        self.counters = counters
        self.bucket_of = bucket_of  # a keyed hash of the credential (the store's caller scope)
        self._own = {entry.key: entry for entry in settings.keys}

    def limits_for(self, key: str | None) -> tuple[int, int]:
        """Requests and tokens per minute for ``key`` (0: no limit)."""
        rpm, tpm = self.settings.requests_per_minute, self.settings.tokens_per_minute
        own = self._own.get(key) if key is not None else None
        if own is not None:
            rpm = own.requests_per_minute if own.requests_per_minute is not None else rpm
            tpm = own.tokens_per_minute if own.tokens_per_minute is not None else tpm
        return rpm, tpm

    async def admit(self, key: str | None, body: bytes) -> Admission | None:
        """Charge one turn, or raise ``RequestsRateLimited`` / ``TokensRateLimited``; ``None``
        when no limit applies to ``key`` (or the counters are down)."""
        rpm, tpm = self.limits_for(key)
        if not rpm and not tpm:
            return None
        tokens = estimate_tokens(body) if tpm else 0
        if tpm and tokens > tpm:
            raise TokensRateLimited(
                f"Request too large for tokens per minute (TPM) on this key: Limit {tpm}, Requested "
                f"{tokens} (estimated: body bytes / {_BYTES_PER_TOKEN} plus the requested output "
                "tokens). Send less input or ask for fewer output tokens.",
                headers={"x-ratelimit-limit-tokens": str(tpm)},
            )
        bucket = self.bucket_of(key)
        try:
            decision = await self.counters.admit(bucket, rpm, tpm, tokens)
        except ShimError as exc:
            log.warning("rate limits not counted: %s", exc.message)
            return None
        headers = _headers(decision)
        if not decision.allowed:
            raise _refusal(decision, tokens, headers)
        record = current_record().get()
        if record is not None and tpm:
            record.usage_wanted = True  # the upstream answers are read for their usage
        return Admission(bucket, tpm, tokens, bool(_read_ask(body).background), headers)

    async def settle(self, admission: Admission, record: RequestRecord | None) -> None:
        """Replace the turn's estimate with the tokens its upstream answers reported."""
        if not admission.tpm or admission.background or record is None:
            return
        used = record.used_tokens
        if used is None:
            if record.answered:
                return  # answers without usage: the estimate stands
            used = 0  # no upstream answered: nothing was used
        try:
            await self.counters.settle(admission.bucket, admission.tpm, used - admission.tokens)
        except ShimError as exc:
            log.warning("rate limits not settled: %s", exc.message)


def _refusal(decision: Decision, tokens: int, headers: dict[str, str]) -> RateLimited:
    wait = decision.retry_after
    headers = {
        **headers,
        "retry-after": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(math.ceil(wait * 1000)),
    }
    kind: type[RateLimited]
    if decision.refused_by == "tokens":
        window: Window | None = decision.tokens
        what, unit, kind = "tokens per minute (TPM)", f", Requested {tokens}", TokensRateLimited
    else:
        window, what, unit, kind = decision.requests, "requests per minute (RPM)", "", RequestsRateLimited
    limit = window.limit if window is not None else 0
    return kind(
        f"Rate limit reached for {what} on this key: Limit {limit}{unit}. "
        f"Please try again in {reset_text(wait)}.",
        headers=headers,
    )


class RateLimit:
    """The ASGI side: admit each limited POST before its handler, put the headers on its answer
    (streamed or not), settle when it ended. Sits inside the body guard (the body is whole)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in LIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            key = bearer(_authorization(scope))
        except AuthenticationError as exc:
            await send_error(send, exc)
            return
        first = await receive()  # the body guard replays the whole body as one message
        try:
            admission = await self.limiter.admit(key, first.get("body", b""))
        except RateLimited as exc:
            await send_error(send, exc)
            return
        replay = replaying(first, receive)
        del first  # the replay holds it until the app reads it, then nothing does
        if admission is None:
            await self.app(scope, replay, send)
            return
        extra = [(k.encode(), v.encode()) for k, v in admission.headers.items()]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        record = current_record().get()
        try:
            await self.app(scope, replay, with_headers)
        finally:
            await asyncio.shield(self.limiter.settle(admission, record))


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None

"""Per-key request and token counters for the rate limits (``shim.http.ratelimit``): in Redis when
the store is Redis, so every replica counts against the same limits; in this process otherwise.

Each limit is a GCRA bucket (the "generic cell rate algorithm", a leaky bucket kept as one
number): ``limit`` units per minute drain continuously, and a bucket stores only the time at
which it will be empty again (``tat``). A request costing ``c`` units fits when ``tat + c·step``
is at most a minute ahead (``step`` = 60 s / limit); the headers follow from the same number:
``remaining`` = what still fits, ``reset`` = until the bucket is empty (OpenAI's "until the limit
resets to its initial state"). The request and token buckets are checked and charged together,
in one step, so a refusal by one charges neither. ``settle`` moves the token bucket by the
difference between the estimate charged up front and the tokens the upstream reported; a bucket
may go past full (a turn that used more than its estimate), which refuses until it drains.

In Redis both are one Lua script, atomic across replicas, on Redis's own clock (``TIME``), so
replicas' clocks never disagree; keys expire when their bucket is empty.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from shim.store.backends import KeyValue
from shim.store.failures import store_failures

__all__ = ["Decision", "MemoryCounters", "RateCounters", "RedisCounters", "Window", "counters_for"]

WINDOW_MS = 60_000.0
_SLACK_MS = 0.001  # float rounding: a bucket exactly full still admits its last unit


@dataclass(frozen=True)
class Window:
    """One limit as the headers show it."""

    limit: int
    remaining: int
    reset: float  # seconds until the bucket is empty


@dataclass(frozen=True)
class Decision:
    allowed: bool
    requests: Window | None  # None: no such limit for this key
    tokens: Window | None
    retry_after: float = 0.0  # seconds until the refused request would fit
    refused_by: Literal["requests", "tokens"] | None = None


class RateCounters(Protocol):
    async def admit(self, bucket: str, rpm: int, tpm: int, tokens: int) -> Decision:
        """Charge one request and ``tokens`` tokens if both fit, else nothing."""
        ...

    async def settle(self, bucket: str, tpm: int, delta: int) -> None:
        """Move the token bucket by ``delta`` tokens (negative: give back)."""
        ...


def _window(limit: int, tat: float, now: float) -> Window:
    step = WINDOW_MS / limit
    remaining = max(0, math.floor((WINDOW_MS - (tat - now)) / step + 1e-9))
    return Window(limit, min(remaining, limit), max(0.0, tat - now) / 1000)


class MemoryCounters:
    """This process's buckets (``memory://`` and ``diskcache://`` stores, or none): each worker
    process of ``--workers N`` counts alone (docs/rate-limits.md)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tats: dict[str, float] = {}
        self._clock = clock  # seconds

    def _now(self) -> float:
        return self._clock() * 1000

    def _tat(self, key: str, now: float) -> float:
        return max(self._tats.get(key, 0.0), now)

    async def admit(self, bucket: str, rpm: int, tpm: int, tokens: int) -> Decision:
        now = self._now()
        if len(self._tats) > 10_000:  # forget empty buckets (many pass-through credentials)
            self._tats = {k: v for k, v in self._tats.items() if v > now}
        plans: list[tuple[str, int, float, float]] = []
        refused: Literal["requests", "tokens"] | None = None
        retry = 0.0
        for name, limit, cost in (("requests", rpm, 1), ("tokens", tpm, tokens)):
            if limit <= 0:
                continue
            key = f"{bucket}:{name}"
            tat = self._tat(key, now)
            new = tat + cost * WINDOW_MS / limit
            if new - now > WINDOW_MS + _SLACK_MS:
                retry = max(retry, new - now - WINDOW_MS)
                refused = refused or name  # type: ignore[assignment]
            plans.append((name, limit, tat, new))
        allowed = refused is None
        windows: dict[str, Window] = {}
        for name, limit, tat, new in plans:
            if allowed:
                self._tats[f"{bucket}:{name}"] = new
            windows[name] = _window(limit, new if allowed else tat, now)
        return Decision(allowed, windows.get("requests"), windows.get("tokens"), retry / 1000, refused)

    async def settle(self, bucket: str, tpm: int, delta: int) -> None:
        if tpm <= 0 or not delta:
            return
        now = self._now()
        key = f"{bucket}:tokens"
        tat = self._tat(key, now) + delta * WINDOW_MS / tpm
        if tat <= now:
            self._tats.pop(key, None)
        else:
            self._tats[key] = tat


# KEYS: the requests bucket, the tokens bucket. ARGV: window ms, rpm, tpm, tokens.
# Returns: allowed, retry ms, refused (0 none, 1 requests, 2 tokens), then per bucket
# remaining and reset ms (-1 where the limit is off).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window = tonumber(ARGV[1])
local limits = {tonumber(ARGV[2]), tonumber(ARGV[3])}
local costs = {1, tonumber(ARGV[4])}
local tats, news = {}, {}
local allowed, refused, retry = 1, 0, 0
for i = 1, 2 do
  if limits[i] > 0 then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    local new = tat + costs[i] * window / limits[i]
    tats[i], news[i] = tat, new
    if new - now > window + 0.001 then
      allowed = 0
      if refused == 0 then refused = i end
      if new - now - window > retry then retry = new - now - window end
    end
  end
end
local out = {allowed, math.ceil(retry), refused}
for i = 1, 2 do
  if limits[i] > 0 then
    local tat = tats[i]
    if allowed == 1 then
      tat = news[i]
      if tat > now then
        redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', math.ceil(tat - now))
      end
    end
    local step = window / limits[i]
    local remaining = math.floor((window - (tat - now)) / step + 1e-9)
    if remaining < 0 then remaining = 0 end
    if remaining > limits[i] then remaining = limits[i] end
    out[#out + 1] = remaining
    out[#out + 1] = math.ceil(tat - now)
  else
    out[#out + 1] = -1
    out[#out + 1] = -1
  end
end
return out
"""

# KEYS: the tokens bucket. ARGV: window ms, tpm, delta tokens.
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + tonumber(ARGV[3]) * tonumber(ARGV[1]) / tonumber(ARGV[2])
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now))
end
return 1
"""


class RedisCounters:
    """Buckets in the store's Redis, under its key prefix; one hash tag per key so a Redis
    Cluster keeps a key's two buckets in one slot (the script touches both)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        from redis.exceptions import RedisError  # only with a Redis store (redis costs ~9 MiB)

        self._errors = RedisError
        self.prefix = prefix
        self._admit = redis.register_script(_ADMIT)
        self._settle = redis.register_script(_SETTLE)

    def _keys(self, bucket: str) -> list[str]:
        return [f"{self.prefix}ratelimit:{{{bucket}}}:{name}" for name in ("requests", "tokens")]

    async def admit(self, bucket: str, rpm: int, tpm: int, tokens: int) -> Decision:
        with store_failures("redis", self._errors):
            raw = await self._admit(keys=self._keys(bucket), args=[WINDOW_MS, rpm, tpm, tokens])
        allowed, retry, refused, r_left, r_reset, t_left, t_reset = (int(v) for v in raw)
        requests = Window(rpm, r_left, r_reset / 1000) if rpm > 0 else None
        tokens_window = Window(tpm, t_left, t_reset / 1000) if tpm > 0 else None
        by: Literal["requests", "tokens"] | None = (None, "requests", "tokens")[refused]
        return Decision(bool(allowed), requests, tokens_window, retry / 1000, by)

    async def settle(self, bucket: str, tpm: int, delta: int) -> None:
        if tpm <= 0 or not delta:
            return
        with store_failures("redis", self._errors):
            await self._settle(keys=self._keys(bucket)[1:], args=[WINDOW_MS, tpm, delta])


def counters_for(backend: KeyValue | None) -> RateCounters:
    """Redis counters over a Redis store (replicas share them), this process's otherwise."""
    # A Redis backend exists only if its module was imported: no import (of redis) here otherwise.
    redis_backend = sys.modules.get("shim.store.redis_backend")
    if redis_backend is not None and isinstance(backend, redis_backend.RedisBackend):
        return RedisCounters(backend.client, backend.prefix)
    return MemoryCounters()

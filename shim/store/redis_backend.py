"""``redis://host:port/db`` (also ``rediss://``, ``unix://``): one store shared by many replicas.

Every key is prefixed (``?prefix=``, default ``shim:``) so the shim can share a database. Each
write is one Redis command or one Lua script, which Redis runs whole: a record is stored entirely
or not at all, and ``add``/``compare_and_set`` are atomic across replicas. Durability after a
Redis restart is Redis's own (RDB/AOF settings); eviction is Redis's ``maxmemory-policy``.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shim.store.failures import store_failures

__all__ = ["DEFAULT_PREFIX", "RedisBackend"]

DEFAULT_PREFIX = "shim:"

# KEYS[1]; ARGV: expect_missing ("1"/"0"), expected, value, ttl in ms ("0": none).
_CAS = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
if ARGV[4] == '0' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1
"""

# KEYS[1]; ARGV: value, ttl in ms ("0": none). Push and expiry in one step.
_APPEND = """
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
if ARGV[2] == '0' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""


def _ms(ttl: float | None) -> int | None:
    return max(1, round(ttl * 1000)) if ttl is not None else None


class RedisBackend:
    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        # No connection yet: the pool connects on first use, inside the server's event loop.
        self._redis: Any = aioredis.Redis.from_url(url, decode_responses=False)
        self.prefix = prefix
        self._cas = self._redis.register_script(_CAS)
        self._append = self._redis.register_script(_APPEND)

    @property
    def client(self) -> Any:
        """The Redis client, for what keeps its own keys beside the store's (rate counters)."""
        return self._redis

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _list(self, key: str) -> str:
        return self.prefix + "\x00list:" + key  # lists apart from values, as in every backend

    async def get(self, key: str) -> bytes | None:
        with store_failures("redis", RedisError):
            value = await self._redis.get(self._k(key))
            return bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with store_failures("redis", RedisError):
            await self._redis.set(self._k(key), value, px=_ms(ttl))

    async def add(self, key: str, value: bytes, ttl: float | None) -> bool:
        with store_failures("redis", RedisError):
            return bool(await self._redis.set(self._k(key), value, px=_ms(ttl), nx=True))

    async def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        with store_failures("redis", RedisError):
            args = ["1" if expected is None else "0", expected or b"", value, str(_ms(ttl) or 0)]
            return bool(await self._cas(keys=[self._k(key)], args=args))

    async def delete(self, key: str) -> bool:
        with store_failures("redis", RedisError):
            return bool(await self._redis.delete(self._k(key), self._list(key)))

    async def append(self, key: str, value: bytes, ttl: float | None) -> int:
        with store_failures("redis", RedisError):
            return int(await self._append(keys=[self._list(key)], args=[value, str(_ms(ttl) or 0)]))

    async def list_range(self, key: str, start: int = 0, stop: int | None = None) -> list[bytes]:
        with store_failures("redis", RedisError):
            if stop is not None and stop <= start:
                return []
            end = -1 if stop is None else stop - 1  # LRANGE's end is inclusive
            return [bytes(v) for v in await self._redis.lrange(self._list(key), start, end)]

    async def ping(self) -> bool:
        with store_failures("redis", RedisError):
            return bool(await self._redis.ping())

    async def aclose(self) -> None:
        await self._redis.aclose()

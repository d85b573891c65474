"""``open_backend``: the store URL picks the backend; a bad URL is a clear error, never a guess."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.settings import load_settings
from shim.store.backends import DiskCacheBackend, MemoryBackend, default_store_url, open_backend
from shim.store.redis_backend import RedisBackend

BAD_URLS = {
    "unknown scheme": "postgres://localhost/db",
    "no scheme": "just/a/path",
    "diskcache without a path": "diskcache://",
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_an_unusable_url_is_refused_with_the_choices(url: str) -> None:
    with pytest.raises(ValueError, match=r"diskcache:///"):
        open_backend(url)


async def test_each_scheme_opens_its_backend(tmp_path: Path) -> None:
    memory = open_backend("memory://")
    disk = open_backend(f"diskcache://{tmp_path / 'd'}", max_bytes=1024**2)
    redis = open_backend("redis://127.0.0.1:1/3?prefix=app:")  # connects lazily: no server needed
    assert isinstance(memory, MemoryBackend)
    assert isinstance(disk, DiskCacheBackend) and disk.path == str(tmp_path / "d")
    assert isinstance(redis, RedisBackend) and redis.prefix == "app:"
    for kv in (memory, disk, redis):
        await kv.aclose()


async def test_the_default_lives_in_the_per_user_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SHIM_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_url() == f"diskcache://{tmp_path / 'xdg' / 'shim' / 'store'}"
    kv = open_backend("")
    assert isinstance(kv, DiskCacheBackend) and (tmp_path / "xdg" / "shim" / "store").is_dir()
    await kv.aclose()


def test_shim_data_dir_holds_the_store_and_the_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The Docker image sets SHIM_DATA_DIR to its volume: all state must land there.
    monkeypatch.setenv("SHIM_DATA_DIR", str(tmp_path / "volume"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_url() == f"diskcache://{tmp_path / 'volume' / 'store'}"


RETENTION = {
    "defaults: 30 days, 4 GiB": ({}, "", 30 * 24 * 3600.0, 4 * 1024**3),
    "environment": ({"SHIM_STORE_TTL": "3600", "SHIM_STORE_MAX_BYTES": "1048576"}, "", 3600.0, 1048576),
    "config file": ({}, "store_ttl = 0\nstore_max_bytes = 2048\n", 0.0, 2048),
    "environment over config file": ({"SHIM_STORE_TTL": "60"}, "store_ttl = 0\n", 60.0, 4 * 1024**3),
}


@pytest.mark.parametrize(("env", "toml", "ttl", "max_bytes"), RETENTION.values(), ids=RETENTION.keys())
def test_retention_settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    toml: str,
    ttl: float,
    max_bytes: int,
) -> None:
    for name in ("SHIM_STORE_TTL", "SHIM_STORE_MAX_BYTES", "SHIM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "shim.toml"
    config.write_text("[server]\n" + toml)
    server = load_settings(config=config).server
    assert (server.store_ttl, server.store_max_bytes) == (ttl, max_bytes)

"""Fixtures shared by the suites that drive a ``LiveShim`` over a ``FaultUpstream`` (tests/faults,
tests/ops): each conftest imports them, so both suites run under the same isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import isolated_env

__all__ = ["fault", "isolated"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolated_env(monkeypatch, tmp_path)


@pytest.fixture
async def fault() -> AsyncIterator[FaultUpstream]:
    async with FaultUpstream() as upstream:
        yield upstream

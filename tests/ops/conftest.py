from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fault_upstream import FaultUpstream
from tests.support.live_shim import isolated_env


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolated_env(monkeypatch, tmp_path)


@pytest.fixture
async def fault() -> AsyncIterator[FaultUpstream]:
    async with FaultUpstream() as upstream:
        yield upstream

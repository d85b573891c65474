from __future__ import annotations

from tests.support.live_fixtures import fault, isolated

__all__ = ["fault", "isolated"]

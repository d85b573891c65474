from __future__ import annotations

from tests.support.live_fixtures import fault, isolated, spans

__all__ = ["fault", "isolated", "spans"]

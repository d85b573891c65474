"""Fixture folders as test cases: the package's own case machinery (``shim.fixtures``), which
``shim fixtures check`` runs too, plus the pytest glue the two fixture suites share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from shim.fixtures.cases import UPSTREAM_NAMES, FixtureCase, error_outcome, rechunkings

__all__ = ["UPSTREAM_NAMES", "FixtureCase", "error_outcome", "params", "rechunkings"]


def params(cases: Sequence[FixtureCase]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[case.id for case in cases])

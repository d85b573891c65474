"""Fixtures every test folder may use."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """One ``.json`` file per test and case; syrupy's JSON extension writes keys sorted."""
    return snapshot.use_extension(JSONSnapshotExtension)

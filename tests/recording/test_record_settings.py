"""``[server.record]`` and ``inspector``: file, environment and flags, like every other setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shim.settings import RecordSettings, load_settings


@pytest.mark.parametrize(
    ("env", "toml", "flags", "record", "inspector"),
    [
        ({}, "", {}, RecordSettings(), False),
        ({"SHIM_RECORD_DIR": "/r"}, "", {}, RecordSettings(dir="/r"), False),
        ({"SHIM_RECORD_DIR": "/r"}, "", {"record": "/flag"}, RecordSettings(dir="/flag"), False),
        (
            {
                "SHIM_RECORD_MODELS": "gpt-*, llama",
                "SHIM_RECORD_STATUSES": "2*",
                "SHIM_RECORD_SAMPLE": "0.25",
            },
            "",
            {},
            RecordSettings(models=("gpt-*", "llama"), statuses=("2*",), sample=0.25),
            False,
        ),
        (
            {"SHIM_RECORD_MAX_CASE_BYTES": "1000"},
            '[server]\ninspector = true\n[server.record]\ndir = "/f"\nroutes = ["/v1/responses"]\n',
            {},
            RecordSettings(dir="/f", routes=("/v1/responses",), max_case_bytes=1000),
            True,
        ),
        ({"SHIM_INSPECTOR": "true"}, "", {}, RecordSettings(), True),
        ({"SHIM_INSPECTOR": "true"}, "", {"inspector": False}, RecordSettings(), False),
    ],
)
def test_record_settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    toml: str,
    flags: dict[str, Any],
    record: RecordSettings,
    inspector: bool,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = None
    if toml:
        config = tmp_path / "shim.toml"
        config.write_text(toml)
    settings = load_settings(config=config, upstream="http://u/v1", **flags)
    assert settings.server.record == record
    assert settings.server.inspector is inspector


def test_sample_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIM_RECORD_SAMPLE", "2")
    with pytest.raises(ValueError, match="SHIM_RECORD_SAMPLE"):
        load_settings(upstream="http://u/v1")

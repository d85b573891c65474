"""Fixture folders as test cases: what the two translation directions' corpora share.

``fixtures/<direction>/<group>/<case>/`` holds ``request.json``, ``note.md`` (what the case
proves), exactly one upstream body (``upstream[.synthetic].sse`` / ``.json``) and optionally
``case.toml``. ``FixtureCase`` reads one folder; a test module subclasses it with its ``root``
and the request type it decodes. ``rechunkings`` gives the byte splits every stream must survive.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Self

import pytest

from shim.upstream.errors import upstream_error

UPSTREAM_NAMES = ("upstream.sse", "upstream.json", "upstream.synthetic.sse", "upstream.synthetic.json")
SMALL = 4096  # below this size every 2-way split is tried; above it, RANDOM_SPLITS seeded ones
RANDOM_SPLITS = 200


@dataclass(frozen=True)
class FixtureCase:
    path: Path
    root: ClassVar[Path]
    toml_keys: ClassVar[frozenset[str]] = frozenset({"upstream_status"})

    @classmethod
    def discover(cls) -> list[Self]:
        return [cls(p) for p in sorted(cls.root.glob("*/*")) if p.is_dir()]

    @property
    def id(self) -> str:
        """``group.case``: the folder's relative path, with a separator syrupy can put in a file name."""
        return ".".join(self.path.relative_to(self.root).parts)

    @cached_property
    def upstreams(self) -> list[Path]:
        return [self.path / n for n in UPSTREAM_NAMES if (self.path / n).is_file()]

    @property
    def upstream(self) -> Path:
        """The upstream bytes (``check_layout`` checks there is exactly one such file)."""
        return self.upstreams[0] if self.upstreams else self.path / UPSTREAM_NAMES[1]

    @property
    def data(self) -> bytes:
        return self.upstream.read_bytes()

    @property
    def is_sse(self) -> bool:
        return self.upstream.suffix == ".sse"

    @cached_property
    def settings(self) -> dict[str, Any]:
        toml = self.path / "case.toml"
        return tomllib.loads(toml.read_text("utf-8")) if toml.is_file() else {}

    @property
    def status(self) -> int:
        status = self.settings.get("upstream_status", 200)
        return status if isinstance(status, int) else 200

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def check_layout(self) -> None:
        """The folder holds what a case needs and nothing else; an error body is never a stream."""
        names = {p.name for p in self.path.iterdir()}
        assert len(self.upstreams) == 1, f"need exactly one of {UPSTREAM_NAMES}, found {sorted(names)}"
        assert names <= {"request.json", "note.md", "case.toml", *UPSTREAM_NAMES}, sorted(names)
        assert (self.path / "note.md").read_text("utf-8").strip(), "note.md says what the case proves"
        assert set(self.settings) <= self.toml_keys, f"case.toml: unknown keys {sorted(self.settings)}"
        assert isinstance(self.settings.get("upstream_status", 200), int)
        if self.is_error:
            assert not self.is_sse, "an error body is upstream[.synthetic].json"


def error_outcome(case: FixtureCase) -> dict[str, Any]:
    """What the client gets for the case's upstream error body: the status and the error envelope."""
    error = upstream_error(case.status, case.data)
    return {"http_status": error.http_status, "envelope": error.envelope()}


def params(cases: Sequence[FixtureCase]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[case.id for case in cases])


def rechunkings(data: bytes, seed: str) -> Iterator[tuple[str, list[bytes]]]:
    """(label, pieces): ``data`` in 1-byte chunks, then split in two at every byte (or, for a
    large body, at RANDOM_SPLITS points seeded by ``seed``, the same on every run)."""
    yield "1-byte chunks", [data[i : i + 1] for i in range(len(data))]
    size = len(data)
    points = (
        range(1, size) if size < SMALL else sorted(random.Random(seed).sample(range(1, size), RANDOM_SPLITS))
    )
    for k in points:
        yield f"split at byte {k}", [data[:k], data[k:]]

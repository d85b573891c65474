"""Load the dialect TOML files once, resolve ``extends``, validate, and hand out frozen structs.

Why files and not Python: a new vendor quirk should be a reviewed data edit plus a fixture,
not a new branch in a translator. Why strict: a misspelt key that silently fell back to the
default would send the wrong shape upstream and fail far from its cause, so every file is
checked on its own (unknown keys named with the file, with a "did you mean"), then merged.

Where the files live:

* in a checkout (tests, editable installs) the top-level ``mappings/`` folder, next to
  ``pyproject.toml``, so edits take effect without a rebuild;
* in an installed wheel ``shim/_mappings`` (``pyproject.toml`` force-includes ``mappings`` there),
  read through ``importlib.resources`` so it also works from a zip.

Resolution: a file's tables are deep-merged over its parent's (child wins; arrays are replaced,
not concatenated, so a child can narrow ``input_modalities``); ``description`` and ``extends``
are never inherited. Cycles and unknown parents are errors naming the chain or the file.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import tomllib
from collections.abc import Iterable, Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec

from shim.dialects.model import AuthRules, Dialect, ErrorRules, RequestRules, ResponseRules

__all__ = [
    "DialectError",
    "UnknownDialect",
    "default_registry",
    "get_dialect",
    "load_dialects",
    "locate_mappings",
]

_CHECKOUT_MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
_PACKAGED_NAME = "_mappings"

_TABLES: Mapping[str, type[msgspec.Struct]] = MappingProxyType(
    {"request": RequestRules, "response": ResponseRules, "errors": ErrorRules, "auth": AuthRules}
)
_SCALARS = frozenset({"description", "extends"})


class DialectError(ValueError):
    """A dialect file is malformed, unknown-keyed, mistyped, or its ``extends`` chain is broken."""


class UnknownDialect(KeyError):
    """No dialect has that name; the message lists the known ones."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(name)

    def __str__(self) -> str:
        # KeyError's own __str__ would print repr(name) only; say what *is* available.
        return f"unknown dialect {self.name!r}; known dialects: {', '.join(self.known)}"


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One file as written: validates types of exactly what the file sets (tables default empty)."""

    description: str
    extends: str | None = None
    request: RequestRules = RequestRules()
    response: ResponseRules = ResponseRules()
    errors: ErrorRules = ErrorRules()
    auth: AuthRules = AuthRules()


def locate_mappings(
    *, checkout: Traversable | None = None, packaged: Traversable | None = None
) -> Traversable:
    """Find the shipped dialect folder: the wheel's ``shim/_mappings``, else the checkout's ``mappings/``.

    The packaged copy wins because it only exists in a built install, where the checkout guess
    (three levels above this module) would point into ``site-packages``. The checkout folder is
    only trusted next to a ``pyproject.toml``. Both locations are parameters so tests can point
    them at temporary directories.
    """
    if packaged is None:
        packaged = importlib.resources.files("shim") / _PACKAGED_NAME
    if checkout is None:
        checkout = _CHECKOUT_MAPPINGS
    if packaged.is_dir() and _has_toml(packaged):
        return packaged
    # A non-filesystem root can only have been chosen explicitly by the caller: trust it.
    marker_ok = (checkout.parent / "pyproject.toml").is_file() if isinstance(checkout, Path) else True
    if marker_ok and checkout.is_dir() and _has_toml(checkout):
        return checkout
    raise DialectError(f"no dialect mappings found: looked in {packaged} and {checkout}")


def load_dialects(path: Path | Traversable | None = None) -> dict[str, Dialect]:
    """Load, validate and resolve every ``*.toml`` in ``path`` (default: :func:`locate_mappings`).

    Not cached: tests load temporary folders. Use :func:`get_dialect` / :func:`default_registry`
    for the shipped set, which is loaded once per process.
    """
    root = locate_mappings() if path is None else path
    if not root.is_dir():
        raise DialectError(f"dialect mappings folder not found: {root}")
    raw: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}
    for entry in sorted(root.iterdir(), key=lambda t: t.name):
        if not entry.name.endswith(".toml") or not entry.is_file():
            continue
        name = entry.name.removesuffix(".toml")
        where[name] = str(entry)
        raw[name] = _read_file(entry)
    if not raw:
        raise DialectError(f"no *.toml dialect files in {root}")

    resolved: dict[str, dict[str, Any]] = {}
    for name in raw:
        _resolve(name, raw, where, resolved, ())
    dialects: dict[str, Dialect] = {}
    for name, merged in resolved.items():
        try:
            dialects[name] = msgspec.convert({"name": name, **merged}, Dialect)
        except msgspec.ValidationError as exc:  # pragma: no cover - each file was checked alone
            raise DialectError(f"{where[name]} (after extends): {exc}") from exc
    return dialects


@functools.cache
def default_registry() -> Mapping[str, Dialect]:
    """The shipped dialects, loaded once per process (read-only view)."""
    return MappingProxyType(load_dialects())


def get_dialect(name: str) -> Dialect:
    """The shipped dialect called ``name``; :class:`UnknownDialect` (a ``KeyError``) lists the rest."""
    registry = default_registry()
    try:
        return registry[name]
    except KeyError:
        raise UnknownDialect(name, registry) from None


def _has_toml(root: Traversable) -> bool:
    return any(e.name.endswith(".toml") for e in root.iterdir())


def _read_file(entry: Traversable) -> dict[str, Any]:
    """Parse one file and check it alone, so every error names the file that caused it."""
    try:
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DialectError(f"{entry}: not valid TOML: {exc}") from exc
    _check_keys(str(entry), data)
    try:
        own = msgspec.convert(data, _File)
    except msgspec.ValidationError as exc:
        raise DialectError(f"{entry}: {exc}") from exc
    if own.extends == entry.name.removesuffix(".toml"):
        raise DialectError(f"{entry}: a dialect cannot extend itself")
    return data


def _check_keys(where: str, data: dict[str, Any]) -> None:
    """Name unknown keys as ``table.key`` with a suggestion; msgspec would only say ``$.request``."""
    top_known = sorted(_SCALARS | set(_TABLES))
    for key, value in data.items():
        if key not in _TABLES and key not in _SCALARS:
            raise DialectError(f"{where}: unknown key {key!r}{_hint(key, top_known)}")
        if key in _TABLES:
            if not isinstance(value, dict):
                raise DialectError(f"{where}: {key!r} must be a table ([{key}])")
            known = list(msgspec.structs.fields(_TABLES[key]))
            names = [f.name for f in known]
            for sub in value:
                if sub not in names:
                    raise DialectError(f"{where}: unknown key '{key}.{sub}'{_hint(sub, names)}")


def _hint(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    suggestion = f"; did you mean {close[0]!r}?" if close else ""
    return f"{suggestion} (known: {', '.join(known)})"


def _resolve(
    name: str,
    raw: dict[str, dict[str, Any]],
    where: dict[str, str],
    done: dict[str, dict[str, Any]],
    chain: tuple[str, ...],
) -> dict[str, Any]:
    """Depth-first merge along ``extends``; ``chain`` is the path so far, for cycle reports."""
    if name in done:
        return done[name]
    if name in chain:
        cycle = " -> ".join((*chain[chain.index(name) :], name))
        raise DialectError(f"dialect extends cycle: {cycle}")
    own = raw[name]
    parent = own.get("extends")
    merged: dict[str, Any] = {}
    if parent is not None:
        if parent not in raw:
            known = sorted(raw)
            raise DialectError(f"{where[name]}: extends unknown dialect {parent!r}{_hint(parent, known)}")
        base = _resolve(parent, raw, where, done, (*chain, name))
        merged = {k: v for k, v in base.items() if k in _TABLES}
    merged = _deep_merge(merged, own)
    done[name] = merged
    return merged


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key (child wins); everything else, arrays included, is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out

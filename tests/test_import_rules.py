"""The layering of ``shim/``, held by reading every module's imports with ``ast``.

Imports only go down: ``cli → http → turns → {conversation, upstream, store, translate} → {wire,
core, dialects}``, with ``fixtures`` (recording, replaying and checking exchanges) between
``http`` and ``turns``, with the shared primitives (``settings``, ``errors``, ``ids``, ``sse``,
``limits``, ``telemetry``) usable by all, and ``tracing`` (the OpenTelemetry seam) usable by all
above it. Only ``http/`` imports Litestar. ``translate/``,
``wire/``, ``core/`` and ``dialects/`` do no IO: no network, processes, clock, randomness or
environment; the one exception is reading the mappings shipped inside the package
(``importlib.resources``) when a dialect or prompt is first loaded. Imports inside functions
count, and so do imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHIM = Path(__file__).resolve().parent.parent / "shim"

# package → the shim packages it must never import
FORBIDDEN: dict[str, set[str]] = {
    "http": {"cli"},
    "fixtures": {"cli", "http"},
    "turns": {"cli", "http", "fixtures"},
    "conversation": {"cli", "http", "fixtures", "turns", "upstream"},
    "upstream": {"cli", "http", "fixtures", "turns", "conversation", "store", "hosted"},
    "hosted": {"cli", "http", "fixtures", "turns", "conversation", "upstream", "store", "translate"},
    "store": {"cli", "http", "fixtures", "turns", "conversation", "upstream", "translate"},
    # the tracing seam sits beside telemetry: below everything that reports through it
    "tracing": {
        "cli",
        "http",
        "fixtures",
        "turns",
        "conversation",
        "upstream",
        "store",
        "translate",
        "hosted",
    },
    "translate": {"cli", "http", "fixtures", "turns", "conversation", "upstream", "store", "hosted"},
    "dialects": {"cli", "http", "fixtures", "turns", "conversation", "upstream", "store", "translate"},
    "wire": {
        "cli",
        "http",
        "fixtures",
        "turns",
        "conversation",
        "upstream",
        "store",
        "translate",
        "dialects",
    },
    "core": {
        "cli",
        "http",
        "fixtures",
        "turns",
        "conversation",
        "upstream",
        "store",
        "translate",
        "dialects",
    },
}
SANS_IO = ("translate", "wire", "core", "dialects")
IO_MODULES = {
    "aiohttp",
    "asyncio",
    "diskcache",
    "http",
    "httpx",
    "litestar",
    "os",
    "random",
    "redis",
    "secrets",
    "socket",
    "ssl",
    "subprocess",
    "threading",
    "time",
    "urllib",
    "uuid",
}


def _modules() -> list[Path]:
    return sorted(p for p in SHIM.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import, absolute names (``shim.x.y``, ``httpx``)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            out.append((node.lineno, node.module or ""))
    return out


def _package(path: Path) -> str:
    parts = path.relative_to(SHIM).parts
    return parts[0] if len(parts) > 1 else ""


MODULES = {str(p.relative_to(SHIM)): p for p in _modules()}


@pytest.mark.parametrize("path", MODULES.values(), ids=MODULES.keys())
def test_imports_only_go_down(path: Path) -> None:
    package = _package(path)
    for line, module in _imports(path):
        top = module.split(".")[0]
        if top == "litestar":
            assert package == "http", f"{path.name}:{line}: only shim/http imports Litestar"
        if top != "shim" or module == "shim":
            continue
        target = module.split(".")[1]
        assert target not in FORBIDDEN.get(package, set()), f"{path.name}:{line}: {package}/ imports {module}"


SANS_IO_MODULES = {k: p for k, p in MODULES.items() if _package(p) in SANS_IO}


@pytest.mark.parametrize("path", SANS_IO_MODULES.values(), ids=SANS_IO_MODULES.keys())
def test_sans_io_packages_do_no_io(path: Path) -> None:
    for line, module in _imports(path):
        assert module.split(".")[0] not in IO_MODULES, f"{path.name}:{line}: imports {module}"
        assert not module.startswith("shim.settings"), f"{path.name}:{line}: settings read the environment"


def test_the_rules_see_every_layer() -> None:
    """A renamed folder must not leave the rules checking nothing."""
    packages = {_package(p) for p in MODULES.values()}
    assert set(FORBIDDEN) <= packages
    assert any(
        module == "litestar" or module.startswith("litestar.")
        for p in MODULES.values()
        for _, module in _imports(p)
    )

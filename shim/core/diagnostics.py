"""Lossy translation is reported, never silent.

Translators call ``diags.report(kind, message, param=...)``; the per-request policy decides:
``ignore`` drops it, ``warn`` keeps it (the server turns it into a header and a log line),
``error`` raises ``UnsupportedParameter`` at once, so nothing half-translated goes upstream.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from shim.errors import UnsupportedParameter

__all__ = ["Diagnostic", "DiagnosticKind", "Diagnostics", "Policy"]

Policy = Literal["ignore", "warn", "error"]
DiagnosticKind = Literal[
    "dropped_param",
    "unsupported_tool",
    "unsupported_content",
    "rewritten_id",
    "lossy_value",
    "unsupported_item",
    "emulated",
]


class Diagnostic(msgspec.Struct, frozen=True):
    kind: DiagnosticKind
    message: str
    param: str | None = None


class Diagnostics:
    def __init__(self, policy: Policy = "warn") -> None:
        self.policy: Policy = policy
        self.items: list[Diagnostic] = []

    def report(self, kind: DiagnosticKind, message: str, *, param: str | None = None) -> None:
        if self.policy == "ignore":
            return
        if self.policy == "error":
            raise UnsupportedParameter(message, param=param)
        self.items.append(Diagnostic(kind, message, param))

    def header_value(self) -> str:
        """A compact, header-safe summary: ``kind:param; kind:param``."""
        return "; ".join(f"{d.kind}:{d.param or '-'}" for d in self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

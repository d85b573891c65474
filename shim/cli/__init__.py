"""The ``shim`` command (``command.main``), ``shim convert`` and the embedded dev-time upstream.

Nothing under ``cli/`` is imported by the server: it sits on top of the import graph.
"""

from shim.cli.command import main

__all__ = ["main"]

"""Where the shim keeps its own files: the per-user data directory.

``SHIM_DATA_DIR`` when set (the Docker image points it at its ``/data`` volume), else
``$XDG_DATA_HOME/shim``, else ``~/.local/share/shim``. The server secret and the default
diskcache store both live here, so one volume or one directory holds all of the shim's state.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir"]


def data_dir() -> Path:
    explicit = os.environ.get("SHIM_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "shim"

"""The server secret and the secrets it replaced: where they come from, how the file is made.

The secret keys two things (docs/security.md): the caller scope, a keyed hash of the client's
credential that prefixes every stored record, and the keys that seal ``encrypted_content``
(``sealing.py``); ``TurnContext`` (turns/context.py) derives both. Rotation: the current secret
seals and writes; previous ones (``SHIM_PREVIOUS_SECRETS``) only open and look up, so items
sealed and responses stored before the change keep working until they expire. A previous secret
may be short: rotating away from a weak secret is what it is for.

Without ``SHIM_SECRET`` the secret is the file ``secret`` in the data directory, made once by
whichever process comes first: 32 random bytes go to a private temporary file, which is then
hard-linked into place. The link fails if another process won, and everyone reads the winner's
file, so ``--workers N`` on a fresh directory never ends with two secrets or a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from shim.settings import MIN_SECRET_BYTES, ServerSettings, check_secret, environment, secret_values

__all__ = ["previous_secrets", "secret_file", "server_secret"]


def secret_file(path: Path) -> bytes:
    """The secret in ``path``, made first if there is none (safe against concurrent makers)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(MIN_SECRET_BYTES))
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs wins
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
        data = path.read_bytes()
    check_secret(data, f"the secret file {path} (delete it to make a new one, or set SHIM_SECRET)")
    return data


def server_secret(server: ServerSettings) -> bytes:
    """``SHIM_SECRET`` (or ``[server] secret``), else the data directory's secret file."""
    value, _ = secret_values(server)
    if value:
        secret = value.encode()
        check_secret(secret, "SHIM_SECRET")
        return secret
    return secret_file(environment().data_dir / "secret")


def previous_secrets(server: ServerSettings) -> tuple[bytes, ...]:
    """``SHIM_PREVIOUS_SECRETS`` (or ``[server] previous_secrets``): they open and look up, never
    seal nor write (``TurnContext.scopes``)."""
    return tuple(p.encode() for p in secret_values(server)[1] if p)

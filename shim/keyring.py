"""The server secret, the secrets it replaced, and the caller scopes derived from them.

The secret keys two things (docs/security.md): the caller scope, a keyed hash of the client's
credential that prefixes every stored record, and the keys that seal ``encrypted_content``
(``shim.sealing``). Rotation: the current secret seals and writes; previous ones
(``SHIM_PREVIOUS_SECRETS``) only open and look up, so items sealed and responses stored before
the change keep working until they expire. A previous secret may be short: rotating away from a
weak secret is what it is for.

Without ``SHIM_SECRET`` the secret is the file ``secret`` in the data directory, made once by
whichever process comes first: 32 random bytes go to a private temporary file, which is then
hard-linked into place. The link fails if another process won, and everyone reads the winner's
file, so ``--workers N`` on a fresh directory never ends with two secrets or a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from shim.paths import data_dir
from shim.settings import MIN_SECRET_BYTES, ServerSettings, check_secret, secret_values
from shim.store.repository import scope_of

__all__ = ["Keyring", "secret_file", "server_secret"]


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
    return secret_file(data_dir() / "secret")


class Keyring:
    """The current secret first, then the previous ones, without repeats."""

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        check_secret(current, "the server secret")
        self.current = current
        self.previous = tuple(dict.fromkeys(p for p in previous if p and p != current))

    @classmethod
    def of(cls, server: ServerSettings) -> Keyring:
        return cls(server_secret(server), (p.encode() for p in secret_values(server)[1]))

    def scope(self, credential: str | None) -> str:
        """The scope everything is written under."""
        return scope_of(self.current, credential)

    def scopes(self, credential: str | None) -> tuple[str, ...]:
        """Every scope a record of this caller may be under: the current one first."""
        return (self.scope(credential), *(scope_of(p, credential) for p in self.previous))

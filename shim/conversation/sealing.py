"""Sealed blobs: what the shim hands a stateless client to bring back later, unreadable to it.

Codex and similar clients send ``store: false`` and resend the whole history each turn, so state
the upstream needs again (reasoning text, a compaction summary) travels inside the items as
``encrypted_content``. A ``Sealer`` turns a payload into such a string and back:

* authenticated encryption (AES-256-GCM, ``cryptography``): a flipped bit, a cut-off string or a
  blob from another server fails to open — it never decodes into something else;
* one key per purpose (``reasoning``, ``compaction``), derived with HKDF from the server secret,
  so a blob of one kind cannot be replayed as the other;
* the caller's scope (a keyed hash of its credential) is the associated data, so a blob opened
  under another credential fails exactly like a forged one;
* a version prefix (``shim1.``) so the format can change without misreading old blobs;
* rotation: blobs are sealed with the current secret; ones sealed with a previous secret (and
  that secret's scope for the caller) still open (``shim.conversation.keyring``).

Layout: ``shim1.`` + base64url(nonce[12] ‖ ciphertext ‖ tag[16]), without padding.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["PREFIX", "Purpose", "SealError", "Sealer"]

PREFIX = "shim1."
Purpose = Literal["reasoning", "compaction"]
_NONCE = 12
_TAG = 16
_SALT = b"shim sealed items"


class SealError(ValueError):
    """A blob that does not open: not ours, altered, truncated, or sealed for another caller."""


def _key(secret: bytes, purpose: str) -> AESGCM:
    # ``cryptography`` (~6 MiB of resident memory a worker) loads with the first blob sealed or
    # opened: most servers never see one (tests/test_lazy_imports.py).
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=f"{PREFIX}{purpose}".encode())
    return AESGCM(hkdf.derive(secret))


class Sealer:
    """Seals with the server secret; opens what it or one of the ``previous`` secrets sealed.
    Keys are derived once, on the first blob sealed or opened (secrets are checked at
    construction)."""

    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        if not secret or not all(previous):
            raise ValueError("the sealing secret must not be empty")
        self._secrets = (secret, *previous)
        self._derived: list[dict[str, AESGCM]] | None = None

    @property
    def _keys(self) -> list[dict[str, AESGCM]]:
        if self._derived is None:
            self._derived = [{p: _key(s, p) for p in ("reasoning", "compaction")} for s in self._secrets]
        return self._derived

    def seal(self, purpose: Purpose, scope: str, payload: bytes) -> str:
        nonce = os.urandom(_NONCE)
        body = self._keys[0][purpose].encrypt(nonce, payload, scope.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + body).rstrip(b"=").decode("ascii")

    def open(self, purpose: Purpose, scope: str, blob: str, previous_scopes: Sequence[str] = ()) -> bytes:
        """``previous_scopes[i]`` is the caller's scope under ``previous[i]``."""
        if not blob.startswith(PREFIX):
            raise SealError("not a blob sealed by this shim")
        text = blob[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise SealError("not valid base64url") from None
        if len(raw) < _NONCE + _TAG:
            raise SealError("too short")
        keys_by_secret = self._keys  # the first use loads ``cryptography``
        from cryptography.exceptions import InvalidTag

        for keys, aad in zip(keys_by_secret, (scope, *previous_scopes), strict=False):
            try:
                return keys[purpose].decrypt(raw[:_NONCE], raw[_NONCE:], aad.encode())
            except InvalidTag:
                continue
        raise SealError("authentication failed")

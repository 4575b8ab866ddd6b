"""Encryption at rest of MCP OAuth secrets (protocol §10.4).

key = HKDF-SHA256(secret = ``FOREST_EXECUTOR_ENCRYPTION_KEY``, empty salt,
info = ``forest-executor:mcp-oauth-credentials``, 32 bytes); AES-256-GCM with a random 12-byte IV;
stored as ``iv (12) | auth tag (16) | ciphertext``. The layout and derivation are fixed by the
protocol so that instances of either implementation sharing a database read each other's rows.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HKDF_INFO = b"forest-executor:mcp-oauth-credentials"
KEY_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16


class DecryptionFailed(Exception):
    """A stored value cannot be decrypted: another key, a truncated or tampered value."""


def derive_key(secret: str) -> bytes:
    """The AES-256 key of a ``FOREST_EXECUTOR_ENCRYPTION_KEY``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=HKDF_INFO)
    # salt=None is RFC 5869's "not provided": a block of zeros, the same key as an empty salt.
    return hkdf.derive(secret.encode("utf-8"))


class CredentialCipher:
    """Encrypts and decrypts text with the key derived from one secret."""

    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(derive_key(secret))

    def encrypt(self, plaintext: str) -> bytes:
        iv = os.urandom(IV_BYTES)
        # The library appends the tag to the ciphertext; the stored layout puts it first.
        sealed = self._aead.encrypt(iv, plaintext.encode("utf-8"), None)
        ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
        return iv + tag + ciphertext

    def decrypt(self, stored: bytes) -> str:
        if len(stored) < IV_BYTES + TAG_BYTES:
            raise DecryptionFailed("The stored value is shorter than an IV and a tag")
        iv = stored[:IV_BYTES]
        tag = stored[IV_BYTES : IV_BYTES + TAG_BYTES]
        ciphertext = stored[IV_BYTES + TAG_BYTES :]
        try:
            plaintext = self._aead.decrypt(iv, ciphertext + tag, None)
        except InvalidTag:
            raise DecryptionFailed("The stored value does not decrypt with this key") from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionFailed("The stored value is not text") from None

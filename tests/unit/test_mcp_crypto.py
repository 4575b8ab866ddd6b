"""Encryption at rest of MCP OAuth secrets: HKDF-SHA256 + AES-256-GCM, iv | tag | ciphertext."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from executor.mcp.crypto import CredentialCipher, DecryptionFailed, derive_key

SECRET = "correct horse battery staple"


def rfc5869_hkdf_sha256(secret: bytes, info: bytes, length: int) -> bytes:
    """HKDF written out from RFC 5869 with the standard library: empty salt."""
    prk = hmac.new(b"", secret, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def test_the_key_is_hkdf_sha256_with_an_empty_salt_and_the_protocol_info() -> None:
    expected = rfc5869_hkdf_sha256(SECRET.encode(), b"forest-executor:mcp-oauth-credentials", 32)
    assert derive_key(SECRET) == expected


def test_the_rfc5869_helper_matches_the_rfcs_empty_salt_test_case() -> None:
    # RFC 5869 appendix A.3: zero-length salt and info.
    ikm = bytes.fromhex("0b" * 22)
    okm = rfc5869_hkdf_sha256(ikm, b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_the_stored_layout_is_iv_then_tag_then_ciphertext() -> None:
    stored = CredentialCipher(SECRET).encrypt("refresh-token-value")
    assert len(stored) == 12 + 16 + len(b"refresh-token-value")
    iv, tag, ciphertext = stored[:12], stored[12:28], stored[28:]
    # Decrypt with an independently derived key and the library's (ciphertext | tag) order.
    key = rfc5869_hkdf_sha256(SECRET.encode(), b"forest-executor:mcp-oauth-credentials", 32)
    assert AESGCM(key).decrypt(iv, ciphertext + tag, None) == b"refresh-token-value"


def test_a_value_sealed_elsewhere_in_the_protocol_layout_decrypts() -> None:
    key = rfc5869_hkdf_sha256(SECRET.encode(), b"forest-executor:mcp-oauth-credentials", 32)
    iv = bytes(range(12))
    sealed = AESGCM(key).encrypt(iv, "sécret ✓".encode(), None)
    stored = iv + sealed[-16:] + sealed[:-16]
    assert CredentialCipher(SECRET).decrypt(stored) == "sécret ✓"


def test_every_encryption_uses_a_fresh_iv() -> None:
    cipher = CredentialCipher(SECRET)
    first, second = cipher.encrypt("same"), cipher.encrypt("same")
    assert first[:12] != second[:12]
    assert cipher.decrypt(first) == cipher.decrypt(second) == "same"


@pytest.mark.parametrize("position", [0, 12, 27, 28, -1])
def test_a_tampered_value_does_not_decrypt(position: int) -> None:
    stored = bytearray(CredentialCipher(SECRET).encrypt("refresh-token-value"))
    stored[position] ^= 0x01
    with pytest.raises(DecryptionFailed):
        CredentialCipher(SECRET).decrypt(bytes(stored))


def test_another_key_does_not_decrypt() -> None:
    stored = CredentialCipher(SECRET).encrypt("refresh-token-value")
    with pytest.raises(DecryptionFailed):
        CredentialCipher("another secret").decrypt(stored)


@pytest.mark.parametrize("stored", [b"", b"x" * 27])
def test_a_truncated_value_does_not_decrypt(stored: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        CredentialCipher(SECRET).decrypt(stored)

"""Per-user MCP OAuth credentials in clear, over an encrypting store (protocol §10.4).

This is the only place that holds the encryption key: the store sees ciphertext, callers see
:class:`OAuthCredential`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from executor.errors import EncryptionKeyMissing
from executor.mcp.crypto import CredentialCipher, DecryptionFailed
from executor.mcp.store import EncryptedCredential, McpCredentialStore
from executor.mcp.token_endpoint import check_token_endpoint

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


@dataclass(frozen=True)
class OAuthCredential:
    """What a refresh needs: the refresh token, the token endpoint and the client."""

    mcp_server_id: str
    refresh_token: str
    token_endpoint: str
    client_id: str | None = None
    client_secret: str | None = None
    client_secret_expires_at: datetime | None = None
    token_endpoint_auth_method: str | None = None
    scopes: str | None = None


@dataclass(frozen=True)
class LoadedCredential:
    """A decrypted credential and the id of its row."""

    row_id: int
    credential: OAuthCredential


class CredentialUnreadable(Exception):
    """A stored secret does not decrypt with the configured key (another key, tampering)."""


class McpCredentials:
    """Deposit, read, rotate and delete credentials; encrypts on the way in, decrypts on the
    way out. ``encryption_key`` is the raw ``FOREST_EXECUTOR_ENCRYPTION_KEY`` (``None``: every
    operation needing it raises :class:`EncryptionKeyMissing`); ``environment`` is
    ``EXECUTOR_ENV``, which relaxes the token endpoint check in development and test."""

    def __init__(
        self,
        store: McpCredentialStore,
        *,
        encryption_key: str | None,
        environment: str = "production",
    ) -> None:
        self.store = store
        self.environment = environment
        self._encryption_key = encryption_key
        self._cipher: CredentialCipher | None = None
        self._cipher_lock = threading.Lock()

    @classmethod
    def in_memory(cls) -> McpCredentials:
        """A memory store without a key (tests and embedders that do not use MCP OAuth)."""
        from executor.adapters.stores.memory_credentials import MemoryMcpCredentialStore

        return cls(MemoryMcpCredentialStore(), encryption_key=None)

    def init(self) -> None:
        self.store.init()

    def close(self) -> None:
        self.store.close()

    def check_token_endpoint(self, url: str) -> None:
        """Raise :class:`executor.errors.InvalidTokenEndpoint` for an unsafe token endpoint."""
        check_token_endpoint(url, environment=self.environment)

    def deposit(self, user_id: int, credential: OAuthCredential) -> None:
        """Store (or replace) the user's credential for ``credential.mcp_server_id``."""
        self.check_token_endpoint(credential.token_endpoint)
        cipher = self._cipher_or_raise()
        self.store.put(
            EncryptedCredential(
                user_id=user_id,
                mcp_server_id=credential.mcp_server_id,
                refresh_token_enc=cipher.encrypt(credential.refresh_token),
                token_endpoint=credential.token_endpoint,
                client_id=credential.client_id,
                client_secret_enc=(
                    None
                    if credential.client_secret is None
                    else cipher.encrypt(credential.client_secret)
                ),
                client_secret_expires_at=credential.client_secret_expires_at,
                token_endpoint_auth_method=credential.token_endpoint_auth_method,
                scopes=credential.scopes,
            )
        )

    def delete(self, user_id: int, mcp_server_id: str) -> bool:
        return self.store.delete(user_id, mcp_server_id)

    def load(self, user_id: int, mcp_server_id: str) -> LoadedCredential | None:
        """The decrypted credential, if any. Raises :class:`EncryptionKeyMissing` without a key
        and :class:`CredentialUnreadable` when a secret does not decrypt."""
        cipher = self._cipher_or_raise()
        stored = self.store.get(user_id, mcp_server_id)
        if stored is None:
            return None
        row = stored.credential
        try:
            refresh_token = cipher.decrypt(row.refresh_token_enc)
            client_secret = (
                None if row.client_secret_enc is None else cipher.decrypt(row.client_secret_enc)
            )
        except DecryptionFailed as error:
            raise CredentialUnreadable(
                f"Credential {stored.row_id} of MCP server {mcp_server_id!r} is unreadable: {error}"
            ) from error
        return LoadedCredential(
            stored.row_id,
            OAuthCredential(
                mcp_server_id=row.mcp_server_id,
                refresh_token=refresh_token,
                token_endpoint=row.token_endpoint,
                client_id=row.client_id,
                client_secret=client_secret,
                client_secret_expires_at=row.client_secret_expires_at,
                token_endpoint_auth_method=row.token_endpoint_auth_method,
                scopes=row.scopes,
            ),
        )

    def save_rotated_refresh_token(self, row_id: int, refresh_token: str) -> bool:
        """Write a rotated refresh token back to that row only; False when it is gone."""
        cipher = self._cipher_or_raise()
        return self.store.update_refresh_token(row_id, cipher.encrypt(refresh_token))

    def _cipher_or_raise(self) -> CredentialCipher:
        # Derived lazily (the key is optional and read lazily, §1.4), once.
        with self._cipher_lock:
            if self._cipher is None:
                if self._encryption_key is None:
                    raise EncryptionKeyMissing("FOREST_EXECUTOR_ENCRYPTION_KEY is not set")
                self._cipher = CredentialCipher(self._encryption_key)
            return self._cipher

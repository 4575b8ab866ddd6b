"""The per-user OAuth credential store: its rows and its port (protocol §10.4, §11.3).

Rows hold the refresh token and client secret encrypted (``*_enc``); only
:class:`executor.mcp.credentials.McpCredentials` sees them in clear.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class EncryptedCredential:
    """One user's credential for one MCP server, as stored."""

    user_id: int
    mcp_server_id: str
    refresh_token_enc: bytes
    token_endpoint: str
    client_id: str | None = None
    client_secret_enc: bytes | None = None
    client_secret_expires_at: datetime | None = None
    token_endpoint_auth_method: str | None = None
    scopes: str | None = None


@dataclass(frozen=True)
class StoredCredential:
    """A credential and the id of the row it was read from (rotation writes back to that row)."""

    row_id: int
    credential: EncryptedCredential


class McpCredentialStore(abc.ABC):
    """Credentials keyed by (user id, MCP server id).

    Every failure surfaces as :class:`executor.errors.CredentialStoreError`.
    """

    @abc.abstractmethod
    def init(self) -> None:
        """Open connections and create the table (migration 002; idempotent)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; ``init()`` may be called again afterwards."""

    @abc.abstractmethod
    def get(self, user_id: int, mcp_server_id: str) -> StoredCredential | None:
        """The user's credential for the server, if any."""

    @abc.abstractmethod
    def put(self, credential: EncryptedCredential) -> None:
        """Replace, atomically, the credential of its (user id, MCP server id)."""

    @abc.abstractmethod
    def delete(self, user_id: int, mcp_server_id: str) -> bool:
        """Remove the credential; True when there was one."""

    @abc.abstractmethod
    def update_refresh_token(self, row_id: int, refresh_token_enc: bytes) -> bool:
        """Write a rotated refresh token to that row only; False when the row is gone (never
        re-creates a deleted credential)."""

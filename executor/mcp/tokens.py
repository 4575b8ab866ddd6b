"""Per-user access tokens of OAuth2 MCP servers, as the MCP client needs them (protocol §10.3).

Only the shape lives here; the credential store and the refresh grant implement it.
"""

from __future__ import annotations

from typing import Protocol


class ReauthNeeded(Exception):
    """The user must connect the MCP server again: no usable credential is left."""

    def __init__(self, mcp_server_id: str) -> None:
        super().__init__(f"MCP server {mcp_server_id} needs re-authentication")
        self.mcp_server_id = mcp_server_id


class AccessTokenSource(Protocol):
    """Access tokens for (user, MCP server); raises :class:`ReauthNeeded` when none can be had."""

    def access_token(self, user_id: int, mcp_server_id: str, *, force_refresh: bool = False) -> str:
        """A valid access token, refreshed first when ``force_refresh`` or when the cached one
        is about to expire."""
        ...

    def evict(self, user_id: int, mcp_server_id: str) -> None:
        """Forget the cached token (the credential changed)."""
        ...

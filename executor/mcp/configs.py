"""MCP server configurations as the orchestrator advertises them (protocol §10.1)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace


class Transport(enum.StrEnum):
    STREAMABLE_HTTP = "http"
    SSE = "sse"


@dataclass(frozen=True)
class McpServerConfig:
    """One remote MCP server the executor may reach.

    ``name`` is the key the orchestrator files it under (the tools' ``sourceId``); ``server_id``
    is the ``mcpServerId`` steps refer to.
    """

    name: str
    server_id: str
    transport: Transport
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    oauth2: bool = False

    def with_bearer(self, token: str) -> McpServerConfig:
        """The same server, called with the user's access token (any configured Authorization
        header is replaced: the user's token is what the server must see)."""
        kept = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        return replace(self, headers={**kept, "Authorization": f"Bearer {token}"})

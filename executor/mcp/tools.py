"""What MCP tool loading and steps know of MCP, free of the SDK: a tool as published, and an
operation's failure, classified (protocol §10.2).

The SDK itself (``executor.mcp.client``) costs about 28 MiB of memory once imported; it is loaded
when the first MCP operation runs, so an executor whose workflows have no MCP steps never pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FailureKind = Literal["auth", "connection", "unknown"]


@dataclass(frozen=True)
class McpTool:
    """A tool as its server publishes it, and which server (config name) provides it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    source_id: str


class McpOperationError(Exception):
    """An MCP operation failed; ``kind`` says why (protocol §10.2's classification)."""

    def __init__(self, message: str, *, kind: FailureKind, cause: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.cause = cause

    @property
    def is_auth(self) -> bool:
        return self.kind == "auth"

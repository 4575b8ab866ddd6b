"""The ports one runner works with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from executor.mcp.credentials import McpCredentials
from executor.mcp.servers import McpServers
from executor.mcp.tokens import McpAccessTokens
from executor.ports import (
    ActivityLogPort,
    AgentPort,
    AiModel,
    ApprovalPort,
    RunLeases,
    RunStore,
    WorkflowPort,
)
from executor.steps.registry import StepRegistry

# "Not given": __post_init__ builds the tokens over ``mcp_credentials``.
_TOKENS_OVER_CREDENTIALS = cast(McpAccessTokens, None)


@dataclass(frozen=True)
class Services:
    """The orchestrator, the run store and its leases, the agent, the Forest server's audit
    trail and approvals, and the step executors."""

    workflow: WorkflowPort
    run_store: RunStore
    leases: RunLeases
    steps: StepRegistry
    agent: AgentPort
    activity_log: ActivityLogPort
    approvals: ApprovalPort
    # AI configurations by name, the first being the default (protocol §8).
    ai_models: Mapping[str, AiModel] = field(default_factory=dict)
    # Per-user MCP OAuth credentials and the access tokens refreshed from them (protocol §10.3).
    # Defaults: a memory store without an encryption key, and tokens over the given credentials.
    mcp_credentials: McpCredentials = field(default_factory=McpCredentials.in_memory)
    mcp_tokens: McpAccessTokens = _TOKENS_OVER_CREDENTIALS
    # MCP steps and /list-mcp-tools; None: no MCP server can be reached (NoMcpTools).
    mcp: McpServers | None = None

    def __post_init__(self) -> None:
        if self.mcp_tokens is None:
            object.__setattr__(self, "mcp_tokens", McpAccessTokens(self.mcp_credentials))

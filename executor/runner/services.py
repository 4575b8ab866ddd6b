"""The ports one runner works with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from executor.mcp.servers import McpServers
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
    # MCP steps and /list-mcp-tools; None: no MCP server can be reached (NoMcpTools).
    mcp: McpServers | None = None

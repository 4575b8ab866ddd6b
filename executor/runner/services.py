"""The ports one runner works with."""

from __future__ import annotations

from dataclasses import dataclass

from executor.ports import (
    ActivityLogPort,
    AgentPort,
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

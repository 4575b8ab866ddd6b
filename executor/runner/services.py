"""The ports one runner works with."""

from __future__ import annotations

from dataclasses import dataclass

from executor.ports import RunLeases, RunStore, WorkflowPort
from executor.steps.registry import StepRegistry


@dataclass(frozen=True)
class Services:
    """The orchestrator, the run store and its leases, and the step executors."""

    workflow: WorkflowPort
    run_store: RunStore
    leases: RunLeases
    steps: StepRegistry

"""Ports: the abstract interfaces that steps and the runner are written against.

Adapters (``executor.adapters``) implement them over real I/O; tests may use in-memory versions.
"""

from __future__ import annotations

import abc
from collections.abc import Collection

from executor.domain.executions import StepExecutionData
from executor.domain.outcomes import StepOutcome
from executor.domain.runs import Dispatch, MalformedRun, PendingRuns


class RunStore(abc.ABC):
    """Private per-step state, one document per (run id, step index).

    Every failure surfaces as :class:`executor.errors.RunStoreError`.
    """

    @abc.abstractmethod
    def init(self) -> None:
        """Open connections and create or upgrade the schema (idempotent)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; ``init()`` may be called again afterwards."""

    @abc.abstractmethod
    def get_step_executions(self, run_id: str) -> list[StepExecutionData]:
        """Every entry of the run, sorted by step index (``[]`` for an unknown run)."""

    @abc.abstractmethod
    def save_step_execution(self, run_id: str, data: StepExecutionData) -> None:
        """Insert or replace, atomically, the entry keyed by ``(run_id, data["stepIndex"])``."""

    @abc.abstractmethod
    def delete_step_execution(self, run_id: str, step_index: int) -> None:
        """Remove one entry; removing a missing entry is not an error."""

    def get_step_execution(self, run_id: str, step_index: int) -> StepExecutionData | None:
        """The entry at ``step_index``, if any."""
        for entry in self.get_step_executions(run_id):
            if entry["stepIndex"] == step_index:
                return entry
        return None


class RunLeases(abc.ABC):
    """Who is executing which run, shared by every process that uses the same store.

    The per-process in-flight registry cannot see other gunicorn workers or other executor
    instances; a lease with an expiry can, and a crashed holder's lease simply runs out.
    """

    @abc.abstractmethod
    def acquire(self, run_id: str, owner: str, ttl_s: float) -> bool:
        """Take the lease unless another owner holds an unexpired one; True when taken."""

    @abc.abstractmethod
    def renew(self, run_ids: Collection[str], owner: str, ttl_s: float) -> None:
        """Push back the expiry of the leases ``owner`` holds on ``run_ids``."""

    @abc.abstractmethod
    def release(self, run_id: str, owner: str) -> None:
        """Give the lease up (only if ``owner`` holds it)."""


class WorkflowPort(abc.ABC):
    """The orchestrator (Forest server), as the runner and the HTTP API use it.

    Every transport failure surfaces as :class:`executor.errors.WorkflowPortError`.
    """

    @abc.abstractmethod
    def fetch_pending_runs(self) -> PendingRuns:
        """Runs available to this environment's executors, mapped to dispatches."""

    @abc.abstractmethod
    def claim_run(self, run_id: str) -> Dispatch | None:
        """Atomically claim one run; ``None`` when there is nothing to claim.

        Raises :class:`executor.errors.MalformedRunError` for a run that cannot be executed.
        """

    @abc.abstractmethod
    def report_outcome(self, run_id: str, outcome: StepOutcome) -> Dispatch | None:
        """Report an outcome; returns the run's next step when the orchestrator has one ready."""

    @abc.abstractmethod
    def report_malformed_run(self, run: MalformedRun) -> None:
        """Report a run that cannot be executed as an error outcome."""

    @abc.abstractmethod
    def has_access(self, run_id: str, user_id: int) -> bool:
        """Whether the user may see the run (anything but an explicit yes is a no)."""

    @abc.abstractmethod
    def report_executor_metadata(self, version: str) -> None:
        """Tell the orchestrator which executor version is running."""

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters hold nothing to release
        """Release connections."""

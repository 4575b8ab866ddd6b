"""Ports: the abstract interfaces that steps and the runner are written against.

Adapters (``executor.adapters``) implement them over real I/O; tests may use in-memory versions.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from executor.domain.ai import ChatMessage, ToolCall, ToolDefinition
from executor.domain.collections import ActionSchema, CollectionSchema
from executor.domain.executions import StepExecutionData
from executor.domain.ids import RecordId
from executor.domain.outcomes import StepOutcome
from executor.domain.records import (
    ActionForm,
    ActivityLogEntry,
    ActivityLogHandle,
    RecordData,
    RelatedRecord,
)
from executor.domain.runs import Dispatch, MalformedRun, PendingRuns, StepUser


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

    def ping(self) -> None:
        """Check the store answers, cheaply (readiness); raises ``RunStoreError`` otherwise.

        The default reads a run that does not exist; adapters may do something cheaper.
        """
        self.get_step_executions("readiness-ping")

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

    @abc.abstractmethod
    def get_collection_schema(self, run_id: str, collection_name: str) -> CollectionSchema:
        """The collection's schema as the run's rendering sees it."""

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters hold nothing to release
        """Release connections."""


class AgentPort(abc.ABC):
    """The customer's Forest agent: their data and actions, on behalf of a step's user.

    Failures surface as :class:`executor.errors.AgentPortError` unless a method names another
    error. Record ids are lists of parts; adapters pipe-join them on the wire.
    """

    @abc.abstractmethod
    def probe(self) -> None:
        """Check the agent answers; raises :class:`executor.errors.AgentProbeError`."""

    @abc.abstractmethod
    def get_record(
        self,
        user: StepUser,
        collection: CollectionSchema,
        record_id: RecordId,
        field_names: Sequence[str] | None = None,
    ) -> RecordData:
        """One record, projected on ``field_names``; *RecordNotFound* when it is gone."""

    @abc.abstractmethod
    def update_record(
        self,
        user: StepUser,
        collection: CollectionSchema,
        record_id: RecordId,
        values: Mapping[str, Any],
    ) -> RecordData:
        """Write ``values``; returns the record as the agent answers after the update."""

    @abc.abstractmethod
    def list_related(
        self,
        user: StepUser,
        collection: CollectionSchema,
        record_id: RecordId,
        relation: str,
        related: CollectionSchema,
        *,
        limit: int,
        filters: Any = None,
    ) -> list[RecordData]:
        """Records of a to-many relation (first page of ``limit``), optionally filtered."""

    @abc.abstractmethod
    def get_related(
        self,
        user: StepUser,
        collection: CollectionSchema,
        record_id: RecordId,
        relation: str,
        label_field: str,
    ) -> RelatedRecord | None:
        """The record at the end of a to-one relation (``None`` when there is none)."""

    @abc.abstractmethod
    def get_polymorphic_type(
        self, user: StepUser, collection: CollectionSchema, record_id: RecordId, relation: str
    ) -> str | None:
        """The collection a polymorphic relation of this record points to, if any."""

    @abc.abstractmethod
    def load_action_form(
        self, user: StepUser, action: ActionSchema, collection_name: str, ids: Sequence[str]
    ) -> ActionForm | None:
        """The action's form from its load hook; ``None`` when it has no dynamic form."""

    @abc.abstractmethod
    def change_action_form(
        self,
        user: StepUser,
        action: ActionSchema,
        collection_name: str,
        ids: Sequence[str],
        changed_field: str,
        fields: Sequence[Mapping[str, Any]],
    ) -> ActionForm:
        """Run the change hook of ``changed_field``; returns the whole new form."""

    @abc.abstractmethod
    def execute_action(
        self,
        user: StepUser,
        action: ActionSchema,
        collection_name: str,
        ids: Sequence[str],
        values: Mapping[str, Any],
    ) -> Any:
        """Execute; returns the agent's answer. Raises *ActionRequiresApproval* when the action
        needs an approval and *ActionFormValidation* when the values are refused."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class ActivityLogPort(abc.ABC):
    """The Forest audit trail (protocol §9), written with the run's server token."""

    @abc.abstractmethod
    def create(self, server_token: str, entry: ActivityLogEntry) -> ActivityLogHandle:
        """Create a pending entry; raises :class:`executor.errors.ActivityLogCreation`."""

    @abc.abstractmethod
    def mark(self, server_token: str, handle: ActivityLogHandle, *, succeeded: bool) -> None:
        """Mark the entry completed or failed without holding the caller back."""

    @abc.abstractmethod
    def flush(self, timeout: float) -> bool:
        """Wait for pending marks; True when none is left."""


class ApprovalPort(abc.ABC):
    """Approval requests filed with the Forest server on the user's behalf (protocol §4.9)."""

    @abc.abstractmethod
    def request_approval(
        self,
        server_token: str,
        rendering_id: int,
        *,
        action_name: str,
        collection_name: str,
        record_ids: Sequence[str],
        inputs: Sequence[Mapping[str, Any]],
        message: str | None,
    ) -> str | None:
        """File the request; returns its id when the server gave one. Raises
        :class:`executor.errors.ApprovalRequestCreation`."""


class AiModel(abc.ABC):
    """A chat model forced to answer with exactly one call of the offered tools.

    Failures surface as :class:`executor.errors.MissingToolCall` (no tool call),
    :class:`executor.errors.MalformedToolCall` (missing or unparsable arguments),
    :class:`executor.errors.AiInvokeTimeout` and :class:`executor.errors.AiModelPortError`.
    """

    @abc.abstractmethod
    def invoke(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        *,
        user_id: int,
    ) -> ToolCall:
        """The first tool call of the answer, its arguments parsed (not yet validated)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

"""What every step executor shares: its context and the outcomes it can return."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from marshmallow import Schema, ValidationError

from executor.domain.collections import CollectionSchema
from executor.domain.executions import StepExecutionData
from executor.domain.outcomes import StepOutcome, StepStatus
from executor.domain.runs import AvailableStepExecution
from executor.errors import AiModelUnavailable, StepStateError
from executor.mcp.servers import McpServers
from executor.ports import RunStore
from executor.steps.audit import AuditedAgent
from executor.steps.decisions import AiDecider


class CollectionSchemas(Protocol):
    """The collection schemas of the step's run, for its user's rendering."""

    def get(self, collection_name: str, *, fresh: bool = False) -> CollectionSchema: ...


class ApprovalRequester(Protocol):
    """Files approval requests for the step's user (bound to the run's server token)."""

    def __call__(
        self,
        *,
        action_name: str,
        collection_name: str,
        record_ids: Sequence[str],
        inputs: Sequence[Mapping[str, Any]],
        message: str | None,
    ) -> str | None: ...


@dataclass(frozen=True)
class StepContext:
    """Everything one step execution may use. Built per step by the runner.

    The record steps need ``agent``, ``schemas`` and (trigger-action) ``request_approval``;
    guidance and condition run without them.
    """

    step: AvailableStepExecution
    run_store: RunStore
    pending_data: Any = None  # the trigger's pendingData (first step of a chain only); None: none
    agent: AuditedAgent | None = None
    schemas: CollectionSchemas | None = None
    request_approval: ApprovalRequester | None = None
    ai: AiDecider | None = None
    mcp: McpServers | None = None  # mcp steps: the tools of their server


class StepExecutor(abc.ABC):
    """Executes one step and returns its outcome.

    ``execute`` may raise :class:`executor.errors.ExecutorError`; the runner turns it into an
    ``error`` outcome carrying the error's user message.
    """

    def __init__(self, context: StepContext) -> None:
        self.context = context
        self.step = context.step

    @abc.abstractmethod
    def execute(self) -> StepOutcome:
        """Run the step and say how it ended."""

    # --- helpers for subclasses -----------------------------------------------------------------

    def outcome(self, status: StepStatus, **extra: Any) -> StepOutcome:
        return StepOutcome(
            type=self.step.definition.type.outcome_type,
            step_id=self.step.step_id,
            step_index=self.step.step_index,
            status=status,
            **extra,
        )

    def success(self, **extra: Any) -> StepOutcome:
        return self.outcome(StepStatus.SUCCESS, **extra)

    def awaiting_input(self, **extra: Any) -> StepOutcome:
        return self.outcome(StepStatus.AWAITING_INPUT, **extra)

    def save(self, entry: StepExecutionData) -> None:
        self.context.run_store.save_step_execution(self.step.run_id, entry)

    def stored_entry(self) -> StepExecutionData | None:
        """This step's own run-store entry, when it has one of the same type."""
        entry = self.context.run_store.get_step_execution(self.step.run_id, self.step.step_index)
        if entry is None or entry.get("type") != self.step.definition.type.value:
            return None
        return entry

    @property
    def agent(self) -> AuditedAgent:
        if self.context.agent is None:
            raise RuntimeError("This step needs the agent in its context")
        return self.context.agent

    @property
    def schemas(self) -> CollectionSchemas:
        if self.context.schemas is None:
            raise RuntimeError("This step needs collection schemas in its context")
        return self.context.schemas

    @property
    def ai(self) -> AiDecider:
        """The AI, for a path that needs a decision; without one the step ends with the
        protocol's AI-unavailable error."""
        if self.context.ai is None:
            raise AiModelUnavailable("No AI model is available to this step")
        return self.context.ai

    def request_text(self, default: str) -> str:
        """The step's prompt, or ``default`` when the designer wrote none."""
        prompt = self.step.definition.prompt
        return prompt if prompt and prompt.strip() else default

    def load_pending_data(self, schema: Schema) -> dict[str, Any]:
        """Validate the user's pendingData for this step type; invalid → StepState error."""
        try:
            loaded = schema.load(self.context.pending_data)
        except ValidationError as error:
            raise StepStateError(
                f"Invalid pendingData for {self.step.definition.type} step: {error.messages}"
            ) from error
        return dict(loaded)

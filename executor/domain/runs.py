"""Runs as the executor sees them once the orchestrator's envelope is mapped (§2.5-§2.7)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from executor.domain.ids import RecordId
from executor.domain.outcomes import StepOutcome
from executor.domain.steps import StepDefinition


@dataclass(frozen=True)
class StepUser:
    """The user on whose behalf a run executes."""

    id: int
    email: str
    first_name: str = ""
    last_name: str = ""
    team: str = ""
    rendering_id: int = 0
    role: str = ""
    permission_level: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordRef:
    collection_name: str
    record_id: RecordId
    step_index: int


@dataclass(frozen=True)
class Step:
    """An entry of the run's live history, given to step executors as context."""

    definition: StepDefinition
    outcome: StepOutcome
    original_step_index: int | None = None


class TriggerType(enum.StrEnum):
    MANUAL = "manual"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class AvailableStepExecution:
    """The one step of a run that this executor is asked to execute now."""

    run_id: str
    step_id: str
    step_index: int
    collection_id: str
    trigger_type: TriggerType
    base_record_ref: RecordRef
    definition: StepDefinition
    previous_steps: tuple[Step, ...]
    user: StepUser


@dataclass(frozen=True)
class Dispatch:
    """A step to execute plus the per-run server token, kept apart so it never leaks into data."""

    step: AvailableStepExecution
    forest_server_token: str = field(repr=False)

    @property
    def run_id(self) -> str:
        return self.step.run_id


@dataclass(frozen=True)
class MalformedRun:
    """A run the executor cannot execute; it is reported as an error so it is not re-dispatched."""

    run_id: str
    step_id: str | None
    step_index: int | None
    user_message: str
    technical_message: str


@dataclass(frozen=True)
class PendingRuns:
    """What one poll of the orchestrator yields."""

    dispatches: tuple[Dispatch, ...] = ()
    malformed: tuple[MalformedRun, ...] = ()
    fetched: int = 0

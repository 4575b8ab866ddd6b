"""Step outcomes: the only thing the orchestrator ever learns about a step (protocol §2.4)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from executor.domain.steps import OutcomeType


class StepStatus(enum.StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    AWAITING_INPUT = "awaiting-input"


NEEDS_OAUTH_REAUTH = "needs-oauth-reauth"


@dataclass(frozen=True)
class StepOutcome:
    """A data-free outcome. ``error`` is always a fixed user-facing message of the catalogue."""

    type: OutcomeType
    step_id: str
    step_index: int
    status: StepStatus
    error: str | None = None
    selected_option: str | None = None  # condition
    approval_request_id: str | None = None  # record (trigger-action)
    awaiting_input_reason: str | None = None  # mcp

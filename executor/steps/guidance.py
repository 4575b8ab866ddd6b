"""guidance: the user (or, later, the AI) writes the step's free-text response (protocol §7.8)."""

from __future__ import annotations

import logging

from executor.domain.executions import GuidanceEntry
from executor.domain.outcomes import StepOutcome
from executor.domain.steps import ExecutionType
from executor.errors import AiModelUnavailable
from executor.schemas.pending import GuidancePendingDataSchema
from executor.steps.base import StepExecutor

log = logging.getLogger(__name__)
_PENDING = GuidancePendingDataSchema()


class GuidanceStep(StepExecutor):
    def execute(self) -> StepOutcome:
        if self.context.pending_data is not None:
            user_input = self.load_pending_data(_PENDING).get("userInput", "")
            entry: GuidanceEntry = {
                "type": self.step.definition.type.value,
                "stepIndex": self.step.step_index,
                "executionResult": {"userInput": user_input},
            }
            self.save(dict(entry))
            return self.success()
        if self.step.definition.execution_type is ExecutionType.MANUAL:
            return self.awaiting_input()
        return self._ai_draft()

    def _ai_draft(self) -> StepOutcome:
        # The AI is never re-run on re-dispatch: a stored result or draft is replayed.
        stored = self.stored_entry()
        if stored is not None and "executionResult" in stored:
            return self.success()
        if stored is not None and "pendingData" in stored:
            return self.awaiting_input()
        try:
            return self.ai_decision("draft a guidance response")  # type: ignore[no-any-return]
        except AiModelUnavailable as error:
            log.warning("Guidance drafted by hand instead of by the AI: %s", error)
        # The protocol's degrade path for an AI failure: an empty draft the user answers by hand.
        degraded: GuidanceEntry = {
            "type": self.step.definition.type.value,
            "stepIndex": self.step.step_index,
            "pendingData": {},
        }
        self.save(dict(degraded))
        return self.awaiting_input()

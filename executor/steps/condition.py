"""condition: choose one of the designer's options (protocol §7.2)."""

from __future__ import annotations

from executor.domain.executions import ConditionEntry
from executor.domain.outcomes import StepOutcome
from executor.domain.steps import ExecutionType
from executor.errors import ConditionUndecided, StepStateError
from executor.schemas.pending import ConditionPendingDataSchema
from executor.steps import prompts, tools
from executor.steps.base import StepExecutor

_PENDING = ConditionPendingDataSchema()
USER_REASONING = "Selected by user"


class ConditionStep(StepExecutor):
    def execute(self) -> StepOutcome:
        if self.context.pending_data is not None:
            return self._user_choice()
        if self.step.definition.execution_type is ExecutionType.MANUAL:
            # Re-dispatched after the user answered (the report of that answer was lost, say):
            # the stored answer stands instead of asking again.
            stored = self.stored_entry()
            if stored is not None and "executionResult" in stored:
                return self.success(selected_option=stored["executionResult"]["answer"])
            return self.awaiting_input()
        return self._ai_choice()

    def _ai_choice(self) -> StepOutcome:
        question = self.request_text("Choose the most appropriate option.")
        answer = self.ai.decide(
            tools.choose_gateway_option(self.step.definition.options),
            instructions=[prompts.CONDITION],
            request=f"**Question**: {question}",
        )
        option = answer["option"]
        entry: ConditionEntry = {
            "type": self.step.definition.type.value,
            "stepIndex": self.step.step_index,
            "executionParams": {"answer": option, "reasoning": answer["reasoning"]},
        }
        if option is not None:
            entry["executionResult"] = {"answer": option}
        self.save(dict(entry))
        if option is None:
            raise ConditionUndecided(f"The AI found no option for step {self.step.step_id}")
        return self.success(selected_option=option)

    def _user_choice(self) -> StepOutcome:
        option = self.load_pending_data(_PENDING)["selectedOption"]
        if option not in self.step.definition.options:
            raise StepStateError(f"Option {option!r} is not one of the step's options")
        entry: ConditionEntry = {
            "type": self.step.definition.type.value,
            "stepIndex": self.step.step_index,
            "executionParams": {"answer": option, "reasoning": USER_REASONING},
            "executionResult": {"answer": option},
        }
        self.save(dict(entry))
        return self.success(selected_option=option)

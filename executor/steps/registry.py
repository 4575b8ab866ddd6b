"""Step registry: which executor class runs which step type."""

from __future__ import annotations

from collections.abc import Mapping

from executor.domain.outcomes import StepOutcome
from executor.domain.steps import StepType
from executor.errors import UnsupportedStepType
from executor.steps.base import StepContext, StepExecutor
from executor.steps.condition import ConditionStep
from executor.steps.guidance import GuidanceStep


class NotYetSupportedStep(StepExecutor):
    """Stands for a step type whose executor has not landed yet: a clear error outcome."""

    def execute(self) -> StepOutcome:
        raise UnsupportedStepType(f"No executor for {self.step.definition.type} steps yet")


DEFAULT_EXECUTORS: Mapping[StepType, type[StepExecutor]] = {
    StepType.CONDITION: ConditionStep,
    StepType.GUIDANCE: GuidanceStep,
}


class StepRegistry:
    def __init__(self, executors: Mapping[StepType, type[StepExecutor]] = DEFAULT_EXECUTORS):
        self._executors = dict(executors)

    def build(self, context: StepContext) -> StepExecutor:
        executor_class = self._executors.get(context.step.definition.type, NotYetSupportedStep)
        return executor_class(context)

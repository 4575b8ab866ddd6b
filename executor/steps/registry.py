"""Step registry: which executor class runs which step type."""

from __future__ import annotations

from collections.abc import Mapping

from executor.domain.outcomes import StepOutcome
from executor.domain.steps import StepType
from executor.errors import UnsupportedStepType
from executor.steps.base import StepContext, StepExecutor
from executor.steps.condition import ConditionStep
from executor.steps.guidance import GuidanceStep
from executor.steps.load_related_record import LoadRelatedRecordStep
from executor.steps.mcp import McpStep
from executor.steps.read_record import ReadRecordStep
from executor.steps.trigger_action import TriggerActionStep
from executor.steps.update_record import UpdateRecordStep


class NotYetSupportedStep(StepExecutor):
    """Stands for a step type a registry was given no executor for (a registry built with a
    partial mapping, as an embedder or a test may): a clear error outcome, not a crash."""

    def execute(self) -> StepOutcome:
        raise UnsupportedStepType(f"No executor for {self.step.definition.type} steps")


DEFAULT_EXECUTORS: Mapping[StepType, type[StepExecutor]] = {
    StepType.CONDITION: ConditionStep,
    StepType.GUIDANCE: GuidanceStep,
    StepType.READ_RECORD: ReadRecordStep,
    StepType.UPDATE_RECORD: UpdateRecordStep,
    StepType.TRIGGER_ACTION: TriggerActionStep,
    StepType.LOAD_RELATED_RECORD: LoadRelatedRecordStep,
    StepType.MCP: McpStep,
}


class StepRegistry:
    def __init__(self, executors: Mapping[StepType, type[StepExecutor]] = DEFAULT_EXECUTORS):
        self._executors = dict(executors)

    def build(self, context: StepContext) -> StepExecutor:
        executor_class = self._executors.get(context.step.definition.type, NotYetSupportedStep)
        return executor_class(context)

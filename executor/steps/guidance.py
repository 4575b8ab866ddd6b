"""guidance: the user, or the AI for them, writes the step's free-text response (§7.8)."""

from __future__ import annotations

import logging

from executor.domain.executions import GuidanceEntry
from executor.domain.outcomes import StepOutcome
from executor.domain.steps import ExecutionType
from executor.errors import ExecutorError
from executor.schemas.pending import GuidancePendingDataSchema
from executor.steps import prompts, tools
from executor.steps.base import StepExecutor
from executor.steps.history import compact_json

log = logging.getLogger(__name__)
_PENDING = GuidancePendingDataSchema()
GROUNDING_FIELDS = 40
GROUNDING_VALUE_CHARS = 200
TRUNCATED = "… (truncated)"


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
            # Re-dispatched after the user answered: the stored answer stands.
            stored = self.stored_entry()
            if stored is not None and "executionResult" in stored:
                return self.success()
            return self.awaiting_input()
        return self._ai_draft()

    def _ai_draft(self) -> StepOutcome:
        # The AI is never re-run on re-dispatch: a stored result or draft is replayed.
        stored = self.stored_entry()
        if stored is not None and "executionResult" in stored:
            return self.success()
        if stored is not None and "pendingData" in stored:
            return self.awaiting_input()
        base = {"type": self.step.definition.type.value, "stepIndex": self.step.step_index}
        try:
            text = self._draft()
        except ExecutorError as error:
            text = None
            log.warning("Guidance left to the user — the AI could not draft it: %s", error)
        if not isinstance(text, str) or not text.strip():
            # The protocol's degrade path: an empty draft that the user answers by hand.
            self.save({**base, "pendingData": {}})
            return self.awaiting_input()
        if self.step.definition.execution_type is ExecutionType.FULLY_AUTOMATED:
            self.save({**base, "executionResult": {"userInput": text, "generatedByAi": True}})
            return self.success()
        self.save({**base, "pendingData": {"userInput": text, "aiGenerated": True}})
        return self.awaiting_input()

    def _draft(self) -> object:
        definition = self.step.definition
        instructions = definition.prompt if (definition.prompt or "").strip() else None
        answer = self.ai.decide(
            tools.submit_guidance_response(),
            preamble=[m for m in [self._trigger_record()] if m],
            instructions=[prompts.GUIDANCE],
            request="**Step instructions**: "
            + (instructions or definition.title or "Provide the response for this step."),
        )
        return answer.get("response")

    def _trigger_record(self) -> str | None:
        """The base record's values, to ground the draft; left out on any failure."""
        if self.context.agent is None or self.context.schemas is None:
            return None
        ref = self.step.base_record_ref
        try:
            schema = self.schemas.get(ref.collection_name)
            fields = schema.readable_fields[:GROUNDING_FIELDS]
            record = self.agent.read_record(schema, ref.record_id, [f.name for f in fields])
        except ExecutorError as error:
            log.warning("Guidance drafted without the trigger record: %s", error)
            return None
        lines = [f"Trigger record — the {schema.display_name} this workflow is running on:"]
        for field in fields:
            value = record.values.get(field.name)
            text = value if isinstance(value, str) else compact_json(value)
            if len(text) > GROUNDING_VALUE_CHARS:
                text = text[:GROUNDING_VALUE_CHARS] + TRUNCATED
            lines.append(f"- {field.display_name}: {text}")
        return "\n".join(lines)

"""What the four record steps share: the source record, the confirmation flow (protocol §7.1.5)
and write-ahead idempotency for the mutating ones (protocol §7.1.6)."""

from __future__ import annotations

import abc
import logging
from typing import Any, ClassVar

from marshmallow import Schema

from executor.domain.executions import StepExecutionData
from executor.domain.outcomes import StepOutcome
from executor.domain.runs import RecordRef
from executor.errors import InvalidAIResponse, StepStateError
from executor.steps import prompts, tools
from executor.steps.base import StepExecutor
from executor.steps.sources import RecordSources, only_candidate

log = logging.getLogger(__name__)

EXECUTING = "executing"
DONE = "done"


def record_ref_document(ref: RecordRef) -> dict[str, Any]:
    return {
        "collectionName": ref.collection_name,
        "recordId": list(ref.record_id),
        "stepIndex": ref.step_index,
    }


def record_ref_of(document: dict[str, Any]) -> RecordRef:
    return RecordRef(document["collectionName"], list(document["recordId"]), document["stepIndex"])


class RecordStep(StepExecutor):
    """A step that works on one record of the run."""

    legacy_index_allowed: ClassVar[bool] = True  # selectedRecordStepIndex (read / update only)

    def source_record(self) -> RecordRef:
        pre = self.step.definition.pre_recorded_args
        sources = RecordSources(self.step, self.context.run_store)
        if pre is not None and pre.selected_record_step_id:
            return sources.pinned(pre.selected_record_step_id)
        if (
            self.legacy_index_allowed
            and pre is not None
            and pre.selected_record_step_index is not None
        ):
            return sources.by_index(pre.selected_record_step_index)
        candidates = sources.candidates()
        single = only_candidate(candidates)
        if single is not None:
            return single
        labels = {
            tools.record_label(
                c.step_index, self.schemas.get(c.collection_name).display_name, c.record_id
            ): c
            for c in candidates
        }
        answer = self.ai.decide(
            tools.select_record(list(labels)),
            instructions=[prompts.SELECT_RECORD],
            request=self.request_text("Select the most relevant record."),
        )
        chosen = labels.get(answer["recordIdentifier"])
        if chosen is None:
            raise InvalidAIResponse("The AI chose a record that was not offered")
        return chosen

    def base_entry(self, source: RecordRef) -> StepExecutionData:
        return {
            "type": self.step.definition.type.value,
            "stepIndex": self.step.step_index,
            "selectedRecordRef": record_ref_document(source),
        }


class ConfirmableStep(RecordStep):
    """A step that proposes, waits for the user's confirmation, then acts.

    Subclasses give the shape of the user's confirmation and what the first call, the confirmed
    action and (for mutating steps) the replay of a finished step do.
    """

    confirmation_schema: ClassVar[Schema]
    mutating: ClassVar[bool] = False

    def execute(self) -> StepOutcome:
        entry = self.stored_entry()
        if self.mutating and entry is not None:
            phase = entry.get("idempotencyPhase")
            if phase == DONE:
                return self.replay(entry)  # never act twice: report what was done
            if phase == EXECUTING:
                log.error(
                    "Step execution was interrupted. Please retry the step manually.",
                    extra={"run_id": self.step.run_id, "step_index": self.step.step_index},
                )
                raise StepStateError("The side effect may have happened; refusing to redo it")
        if entry is None:
            return self.first_call()  # pendingData given now is for a proposal not yet made
        return self._re_entry(entry)

    def _re_entry(self, entry: StepExecutionData) -> StepOutcome:
        if self.context.pending_data is not None:
            confirmation = self.load_pending_data(self.confirmation_schema)
            entry = {**entry, "userConfirmation": confirmation}  # beside, never over, the proposal
            self.save(entry)
        if "pendingData" not in entry:
            raise StepStateError("No proposal is stored for this step")
        confirmation = entry.get("userConfirmation") or {}
        if "userConfirmed" not in confirmation:
            return self.unconfirmed(entry, confirmation)
        if confirmation["userConfirmed"] is False:
            self.save({**entry, "executionResult": {"skipped": True}})
            return self.success()
        return self.confirmed(entry, confirmation)

    @abc.abstractmethod
    def first_call(self) -> StepOutcome:
        """No entry yet: propose (and wait), or act at once when fully automated."""

    @abc.abstractmethod
    def confirmed(self, entry: StepExecutionData, confirmation: dict[str, Any]) -> StepOutcome:
        """The user said yes to the stored proposal."""

    def unconfirmed(self, entry: StepExecutionData, confirmation: dict[str, Any]) -> StepOutcome:
        """No decision yet: keep waiting."""
        return self.awaiting_input()

    def replay(self, entry: StepExecutionData) -> StepOutcome:
        """Report a finished mutating step again without acting."""
        return self.success()

    def mark_executing(self, entry: StepExecutionData) -> None:
        """The write-ahead mark: saved after the audit entry exists, before the side effect."""
        self.save({**entry, "idempotencyPhase": EXECUTING})

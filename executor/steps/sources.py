"""Which record a record step works on (protocol §7.1.2)."""

from __future__ import annotations

from collections.abc import Sequence

from executor.domain.executions import StepExecutionData
from executor.domain.outcomes import StepStatus
from executor.domain.runs import AvailableStepExecution, RecordRef, Step
from executor.domain.steps import WORKFLOW_START, StepType
from executor.errors import InvalidPreRecordedArgs, NoRecords, SourceRecordMissing
from executor.ports import RunStore


def entry_of(previous: Step, entries: dict[int, StepExecutionData]) -> StepExecutionData | None:
    """A previous step's run-store entry: at its own index, or for a revision clone that did not
    fail, at the index of the step it copies."""
    own = entries.get(previous.outcome.step_index)
    if own is not None:
        return own
    if previous.original_step_index is not None and previous.outcome.status is not StepStatus.ERROR:
        return entries.get(previous.original_step_index)
    return None


def loaded_record(entry: StepExecutionData | None) -> RecordRef | None:
    """The record a load-related-record entry loaded, if it loaded one."""
    if entry is None or entry.get("type") != StepType.LOAD_RELATED_RECORD.value:
        return None
    record = (entry.get("executionResult") or {}).get("record")
    if not isinstance(record, dict):
        return None
    return RecordRef(record["collectionName"], list(record["recordId"]), record["stepIndex"])


class RecordSources:
    """The records a step may work on: the base record and those loaded by earlier steps."""

    def __init__(self, step: AvailableStepExecution, run_store: RunStore) -> None:
        self._step = step
        self._run_store = run_store
        self._entries: dict[int, StepExecutionData] | None = None

    def entries(self) -> dict[int, StepExecutionData]:
        if self._entries is None:
            self._entries = {
                e["stepIndex"]: e for e in self._run_store.get_step_executions(self._step.run_id)
            }
        return self._entries

    def candidates(self) -> list[RecordRef]:
        """The base record, then each record loaded by a previous load-related-record step."""
        found = [self._step.base_record_ref]
        for previous in self._loaders():
            record = loaded_record(entry_of(previous, self.entries()))
            if record is not None:
                found.append(record)
        return found

    def pinned(self, step_id: str) -> RecordRef:
        """The record named by ``selectedRecordStepId``."""
        if step_id == WORKFLOW_START:
            return self._step.base_record_ref
        matching = [p for p in self._loaders() if p.outcome.step_id == step_id]
        if not matching:
            raise InvalidPreRecordedArgs(f'No source record found for step "{step_id}"')
        source = matching[-1]  # the latest, should the step have run more than once
        record = loaded_record(entry_of(source, self.entries()))
        if record is None:
            raise SourceRecordMissing(
                f"Source step {step_id} loaded no record", source_title=source.definition.title
            )
        return record

    def by_index(self, step_index: int) -> RecordRef:
        """The candidate loaded at ``step_index`` (the legacy ``selectedRecordStepIndex``)."""
        for candidate in self.candidates():
            if candidate.step_index == step_index:
                return candidate
        raise InvalidPreRecordedArgs(f"No candidate record at step index {step_index}")

    def _loaders(self) -> Sequence[Step]:
        return [
            p
            for p in self._step.previous_steps
            if p.definition.type is StepType.LOAD_RELATED_RECORD
        ]


def only_candidate(candidates: list[RecordRef]) -> RecordRef | None:
    """The candidate when there is exactly one (none: *NoRecords*; several: ``None``, the AI
    must choose)."""
    if not candidates:
        raise NoRecords("No candidate record")
    return candidates[0] if len(candidates) == 1 else None

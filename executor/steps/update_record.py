"""update-record: write one field of a record, after the user confirms unless fully automated
(protocol §7.4)."""

from __future__ import annotations

from typing import Any

from executor.domain.collections import CollectionSchema, FieldSchema
from executor.domain.executions import StepExecutionData
from executor.domain.outcomes import StepOutcome
from executor.domain.runs import RecordRef
from executor.domain.steps import UNSET, ExecutionType
from executor.errors import (
    FieldNotFound,
    FieldTypeMissing,
    InvalidPreRecordedArgs,
    NoWritableFields,
)
from executor.schemas.pending import UpdateConfirmationSchema
from executor.steps import prompts, tools
from executor.steps.coercion import coerce_value
from executor.steps.record_step import DONE, ConfirmableStep, record_ref_of


class UpdateRecordStep(ConfirmableStep):
    confirmation_schema = UpdateConfirmationSchema()
    mutating = True

    def first_call(self) -> StepOutcome:
        source = self.source_record()
        schema = self.schemas.get(source.collection_name)
        field, value = self._choose(schema)
        if self.step.definition.execution_type is ExecutionType.FULLY_AUTOMATED:
            return self._write(self.base_entry(source), source, schema, field, value)
        self.save(
            {
                **self.base_entry(source),
                "pendingData": {
                    "displayName": field.display_name,
                    "name": field.name,
                    "value": value,
                },
            }
        )
        return self.awaiting_input()

    def confirmed(self, entry: StepExecutionData, confirmation: dict[str, Any]) -> StepOutcome:
        proposal = entry["pendingData"]
        value = confirmation["value"] if "value" in confirmation else proposal["value"]
        source = record_ref_of(entry["selectedRecordRef"])
        schema = self.schemas.get(source.collection_name)
        field = self._field(schema, proposal["name"])
        return self._write(entry, source, schema, field, coerce_value(field, value))

    def _choose(self, schema: CollectionSchema) -> tuple[FieldSchema, Any]:
        """The field and value to write: pre-recorded, or (later) decided by the AI."""
        pre = self.step.definition.pre_recorded_args
        field_name = pre.field_name if pre is not None else None
        value = pre.value if pre is not None else UNSET
        if value is not UNSET and not field_name:
            raise InvalidPreRecordedArgs("value was provided without a fieldName")
        if field_name and value is not UNSET:
            return self._field(schema, field_name), value  # used as given: no coercion
        if field_name:
            field = self._field(schema, field_name)
            if field.type is None:
                raise FieldTypeMissing(f"Field {field.name} has no type")
            answer = self.ai.decide(
                tools.set_record_field_value(field),
                instructions=[
                    prompts.UPDATE_FIELD,
                    prompts.collection_line(schema.display_name),
                    f'Set the value of the "{field.display_name}" field.',
                ],
                request="**Request**: "
                + self.request_text(f'Set the "{field.display_name}" field.'),
            )
            return field, coerce_value(field, answer["value"])
        writable = [f for f in schema.fields if f.is_writable]
        if not writable:
            raise NoWritableFields(f"{schema.name} has no writable field")
        answer = self.ai.decide(
            tools.update_record_field(writable),
            instructions=[prompts.UPDATE_FIELD, prompts.collection_line(schema.display_name)],
            request=f"**Request**: {self.request_text('Update the relevant field.')}",
        )
        chosen = tools.resolve_name(answer["input"]["fieldName"], writable)
        if chosen is None:
            raise FieldNotFound(f"The AI chose a field {schema.name} does not have")
        return chosen, coerce_value(chosen, answer["input"]["value"])

    def _field(self, schema: CollectionSchema, name: str) -> FieldSchema:
        field = schema.field_named(name)
        if field is None:
            # The field may be new since the schema was cached: look once more before failing.
            field = self.schemas.get(schema.name, fresh=True).field_named(name)
        if field is None:
            raise FieldNotFound(f"{schema.name} has no field {name}")
        return field

    def _write(
        self,
        entry: StepExecutionData,
        source: RecordRef,
        schema: CollectionSchema,
        field: FieldSchema,
        value: Any,
    ) -> StepOutcome:
        updated = self.agent.update_record(
            schema, source.record_id, {field.name: value}, before=lambda: self.mark_executing(entry)
        )
        self.save(
            {
                **entry,
                "executionParams": {
                    "displayName": field.display_name,
                    "name": field.name,
                    "value": value,
                },
                "executionResult": {"updatedValues": updated.values},
                "idempotencyPhase": DONE,
            }
        )
        return self.success()

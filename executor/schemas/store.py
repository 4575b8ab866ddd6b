"""Run-store documents (StepExecutionData, protocol §2.10), validated on the way in and out.

A document is stored exactly as the protocol shapes it (camelCase keys); these schemas check its
shape without renaming anything, so ``load`` returns the same document it was given.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from executor.domain.executions import StepExecutionData
from executor.domain.steps import StepType
from executor.schemas.fields import JsonValue, LiteralTrue, RecordIdField, StrictString


class _Closed(Schema):
    class Meta:
        unknown = RAISE


class RecordRefSchema(_Closed):
    collectionName = StrictString(required=True, non_empty=True)
    recordId = RecordIdField(required=True)
    stepIndex = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class NamedRefSchema(_Closed):
    """FieldRef, ActionRef and RelationRef: a technical name and its display name."""

    name = StrictString(required=True)
    displayName = StrictString(required=True)


class FieldWithValueSchema(NamedRefSchema):
    value = JsonValue(required=True)


class CandidateSchema(_Closed):
    recordId = RecordIdField(required=True)
    referenceFieldValue = StrictString(required=True, allow_none=True)


class McpToolCallSchema(_Closed):
    name = StrictString(required=True)
    sourceId = StrictString(required=True)
    input = fields.Dict(required=True)


class SkippedSchema(_Closed):
    skipped = LiteralTrue(required=True)


class _Entry(_Closed):
    type = StrictString(required=True)
    stepIndex = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


_PHASES = validate.OneOf(["executing", "done"])


class _Mutating(_Entry):
    idempotencyPhase = StrictString(validate=_PHASES)
    userConfirmation = fields.Dict()


# --- condition ----------------------------------------------------------------------------------


class ConditionParamsSchema(_Closed):
    answer = StrictString(required=True, allow_none=True)
    reasoning = StrictString()


class ConditionResultSchema(_Closed):
    answer = StrictString(required=True)


class ConditionEntrySchema(_Entry):
    executionParams = fields.Nested(ConditionParamsSchema, required=True)
    executionResult = fields.Nested(ConditionResultSchema)

    @validates_schema
    def _result_matches_answer(self, data: dict[str, Any], **_: Any) -> None:
        answer = data["executionParams"]["answer"]
        result = data.get("executionResult")
        if answer is None and result is not None:
            raise ValidationError({"executionResult": ["Absent when the answer is null."]})
        if answer is not None and result is not None and result["answer"] != answer:
            raise ValidationError({"executionResult": ["Must repeat the answer."]})


# --- guidance -----------------------------------------------------------------------------------


class GuidancePendingSchema(_Closed):
    userInput = StrictString()
    aiGenerated = LiteralTrue()


class GuidanceResultSchema(_Closed):
    userInput = StrictString()
    generatedByAi = LiteralTrue()


class GuidanceEntrySchema(_Entry):
    pendingData = fields.Nested(GuidancePendingSchema)
    executionResult = fields.Nested(GuidanceResultSchema)


# --- read-record --------------------------------------------------------------------------------


class ReadFieldResultSchema(NamedRefSchema):
    value = JsonValue()
    error = StrictString()

    @validates_schema
    def _value_or_error(self, data: dict[str, Any], **_: Any) -> None:
        if ("value" in data) == ("error" in data):
            raise ValidationError("A field result has either a value or an error.")


class ReadParamsSchema(_Closed):
    fields_ = fields.List(fields.Nested(NamedRefSchema), required=True, data_key="fields")


class ReadResultSchema(_Closed):
    fields_ = fields.List(fields.Nested(ReadFieldResultSchema), required=True, data_key="fields")


class ReadRecordEntrySchema(_Entry):
    executionParams = fields.Nested(ReadParamsSchema, required=True)
    executionResult = fields.Nested(ReadResultSchema, required=True)
    selectedRecordRef = fields.Nested(RecordRefSchema, required=True)


# --- update-record ------------------------------------------------------------------------------


class _SkippedOrDone(_Closed):
    """Either exactly ``{"skipped": true}`` (the user declined) or the result of the work."""

    done_keys: tuple[str, ...] = ()

    @validates_schema
    def _one_variant(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("skipped"):
            if len(data) != 1:
                raise ValidationError("A skipped result has no other keys.")
            return
        missing = [key for key in self.done_keys if key not in data]
        if missing:
            raise ValidationError({key: ["Missing data for required field."] for key in missing})


class UpdateResultSchema(_SkippedOrDone):
    done_keys = ("updatedValues",)
    updatedValues = fields.Dict()
    skipped = LiteralTrue()


class UpdateRecordEntrySchema(_Mutating):
    pendingData = fields.Nested(FieldWithValueSchema)
    executionParams = fields.Nested(FieldWithValueSchema)
    executionResult = fields.Nested(UpdateResultSchema)
    selectedRecordRef = fields.Nested(RecordRefSchema, required=True)


# --- trigger-action -----------------------------------------------------------------------------


class AiFilledValueSchema(_Closed):
    field = StrictString(required=True)
    value = JsonValue(required=True)


class ActionFormSchema(_Closed):
    fields_ = fields.List(fields.Dict(), required=True, data_key="fields")
    aiFilledValues = fields.List(fields.Nested(AiFilledValueSchema), required=True)


class ActionPendingSchema(NamedRefSchema):
    form = fields.Nested(ActionFormSchema)


class ApprovalRequestSchema(_Closed):
    id = StrictString(required=True, non_empty=True)


class ActionResultSchema(_SkippedOrDone):
    done_keys = ("success",)
    success = LiteralTrue()
    skipped = LiteralTrue()
    actionResult = JsonValue()
    submissionOutcome = StrictString(validate=validate.OneOf(["executed", "pending-approval"]))
    submittedValues = fields.Dict()
    aiFilledValues = fields.List(fields.Nested(AiFilledValueSchema))
    submittedBy = StrictString(validate=validate.OneOf(["ai", "user"]))
    approvalRequest = fields.Nested(ApprovalRequestSchema)


class TriggerActionEntrySchema(_Mutating):
    pendingData = fields.Nested(ActionPendingSchema)
    executionParams = fields.Nested(NamedRefSchema)
    executionResult = fields.Nested(ActionResultSchema)
    selectedRecordRef = fields.Nested(RecordRefSchema, required=True)


# --- load-related-record ------------------------------------------------------------------------


class LoadRelatedPendingSchema(_Closed):
    availableFields = fields.List(fields.Nested(NamedRefSchema), required=True)
    suggestedField = fields.Nested(NamedRefSchema, required=True)
    availableRecordIds = fields.List(fields.Nested(CandidateSchema), required=True)
    suggestedRecord = fields.Nested(CandidateSchema)
    suggestNoRecord = LiteralTrue()


class LoadRelatedResultSchema(_SkippedOrDone):
    done_keys = ("relation", "record")
    relation = fields.Nested(NamedRefSchema)
    record = fields.Nested(RecordRefSchema)
    skipped = LiteralTrue()


class LoadRelatedEntrySchema(_Entry):
    pendingData = fields.Nested(LoadRelatedPendingSchema)
    selectedRecordRef = fields.Nested(RecordRefSchema)
    executionParams = fields.Nested(NamedRefSchema)
    executionResult = fields.Nested(LoadRelatedResultSchema)
    userConfirmation = fields.Dict()


# --- mcp ----------------------------------------------------------------------------------------


class McpResultSchema(_SkippedOrDone):
    done_keys = ("success", "toolResult")
    success = LiteralTrue()
    skipped = LiteralTrue()
    toolResult = JsonValue()
    formattedResponse = StrictString()


class McpEntrySchema(_Mutating):
    pendingData = fields.Nested(McpToolCallSchema)
    executionParams = fields.Nested(McpToolCallSchema)
    executionResult = fields.Nested(McpResultSchema)


ENTRY_SCHEMAS: dict[StepType, Schema] = {
    StepType.CONDITION: ConditionEntrySchema(),
    StepType.GUIDANCE: GuidanceEntrySchema(),
    StepType.READ_RECORD: ReadRecordEntrySchema(),
    StepType.UPDATE_RECORD: UpdateRecordEntrySchema(),
    StepType.TRIGGER_ACTION: TriggerActionEntrySchema(),
    StepType.LOAD_RELATED_RECORD: LoadRelatedEntrySchema(),
    StepType.MCP: McpEntrySchema(),
}


def validate_step_execution(document: Any) -> StepExecutionData:
    """Check that ``document`` is a StepExecutionData of its declared type; return it unchanged.

    Raises :class:`marshmallow.ValidationError` with field messages otherwise.
    """
    if not isinstance(document, dict):
        raise ValidationError({"_schema": ["A step execution must be a JSON object."]})
    try:
        step_type = StepType(str(document.get("type")))
    except ValueError:
        raise ValidationError({"type": ["Unknown step type."]}) from None
    ENTRY_SCHEMAS[step_type].load(document)
    return document

"""Shapes of a trigger's ``pendingData`` per step type (protocol §5.6); every shape is closed."""

from __future__ import annotations

from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from executor.schemas.fields import JsonValue, StrictBoolean, StrictString


class _Closed(Schema):
    class Meta:
        unknown = RAISE


class GuidancePendingDataSchema(_Closed):
    userInput = StrictString()


class ConditionPendingDataSchema(_Closed):
    selectedOption = StrictString(required=True)


class UpdateConfirmationSchema(_Closed):
    userConfirmed = StrictBoolean(required=True)
    value = JsonValue()  # present (even null): overrides the proposal


class ApprovalRequestBodySchema(_Closed):
    id = StrictString(required=True, non_empty=True)


class TriggerActionConfirmationSchema(_Closed):
    userConfirmed = StrictBoolean(required=True)
    actionResult = JsonValue()
    submittedValues = fields.Dict()
    submissionOutcome = StrictString(validate=validate.OneOf(["executed", "pending-approval"]))
    approvalRequest = fields.Nested(ApprovalRequestBodySchema)


class McpConfirmationSchema(_Closed):
    userConfirmed = StrictBoolean(required=True)


class LoadRelatedConfirmationSchema(_Closed):
    userConfirmed = StrictBoolean()
    fieldName = StrictString(non_empty=True)
    selectedRecordId = StrictString(non_empty=True)

    @validates("selectedRecordId")
    def _pipe_id(self, value: str, **_: Any) -> None:
        if any(part == "" for part in value.split("|")):
            raise ValidationError("Every segment of the record id must be non-empty.")

    @validates_schema
    def _combination(self, data: dict[str, Any], **_: Any) -> None:
        if "userConfirmed" not in data and "fieldName" not in data:
            raise ValidationError("fieldName is required to preview another relation.")
        if data.get("userConfirmed") and "fieldName" in data and "selectedRecordId" not in data:
            raise ValidationError("selectedRecordId is required with fieldName.")

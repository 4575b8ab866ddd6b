"""Bodies of the executor's own HTTP API (protocol §5)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from executor.domain.steps import StepType
from executor.schemas.fields import JsonValue


class TriggerRequestSchema(Schema):
    """``{"pendingData"?: any}``; other keys are ignored (protocol §5.6)."""

    class Meta:
        unknown = EXCLUDE

    pendingData = JsonValue(
        load_default=None,
        metadata={"description": "What the user answered; its shape depends on the step type"},
    )


class TriggerResponseSchema(Schema):
    triggered = fields.Boolean(required=True)


class RunStepsResponseSchema(Schema):
    """``{"steps": [...]}``: run-store entries in wire form (record ids pipe-joined)."""

    # Dumped as they are (a Nested schema would drop the type-specific keys); the metadata only
    # documents them.
    steps = fields.List(
        fields.Dict(
            metadata={
                "description": "A run-store entry (StepExecutionData) in wire form",
                "properties": {
                    "type": {"type": "string", "enum": [step.value for step in StepType]},
                    "stepIndex": {"type": "integer", "minimum": 0},
                },
                "required": ["type", "stepIndex"],
            }
        ),
        required=True,
    )


class HealthResponseSchema(Schema):
    state = fields.String(
        required=True, validate=validate.OneOf(["idle", "running", "draining", "stopped"])
    )


class ReadyChecksSchema(Schema):
    runner = fields.String(required=True)
    runStore = fields.String(required=True)
    orchestratorPoll = fields.String(required=True)


class ReadyResponseSchema(Schema):
    ready = fields.Boolean(required=True)
    checks = fields.Nested(ReadyChecksSchema, required=True)


class ErrorResponseSchema(Schema):
    """The one error shape of the API (protocol §5.3)."""

    error = fields.String(required=True, metadata={"description": "A message a user can read"})
    errors = fields.Dict(metadata={"description": "Field messages of an invalid body"})


class McpToolSchema(Schema):
    name = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)


class McpToolListSchema(Schema):
    """``GET /list-mcp-tools`` (protocol §5.7)."""

    tools = fields.List(fields.Nested(McpToolSchema), required=True)


class McpReauthSchema(Schema):
    """The 409 of ``GET /list-mcp-tools``: the caller must reconnect the server."""

    awaiting_input_reason = fields.String(
        data_key="awaitingInputReason",
        required=True,
        metadata={"description": "`needs-oauth-reauth`"},
    )
    mcp_server_id = fields.String(data_key="mcpServerId", required=True)

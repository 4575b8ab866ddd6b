"""Bodies of the executor's own HTTP API (protocol §5)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields

from executor.schemas.fields import JsonValue


class TriggerRequestSchema(Schema):
    """``{"pendingData"?: any}``; other keys are ignored (protocol §5.6)."""

    class Meta:
        unknown = EXCLUDE

    pendingData = JsonValue(load_default=None)


class TriggerResponseSchema(Schema):
    triggered = fields.Boolean(required=True)


class RunStepsResponseSchema(Schema):
    """``{"steps": [...]}``: run-store entries in wire form (record ids pipe-joined)."""

    steps = fields.List(fields.Dict(), required=True)


class HealthResponseSchema(Schema):
    state = fields.String(required=True)


class ReadyChecksSchema(Schema):
    runner = fields.String(required=True)
    runStore = fields.String(required=True)
    orchestratorPoll = fields.String(required=True)


class ReadyResponseSchema(Schema):
    ready = fields.Boolean(required=True)
    checks = fields.Nested(ReadyChecksSchema, required=True)


class ErrorResponseSchema(Schema):
    error = fields.String(required=True)
    errors = fields.Dict()

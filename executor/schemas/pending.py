"""Shapes of a trigger's ``pendingData`` per step type (protocol §5.6); every shape is closed."""

from __future__ import annotations

from marshmallow import RAISE, Schema

from executor.schemas.fields import StrictString


class _Closed(Schema):
    class Meta:
        unknown = RAISE


class GuidancePendingDataSchema(_Closed):
    userInput = StrictString()


class ConditionPendingDataSchema(_Closed):
    selectedOption = StrictString(required=True)

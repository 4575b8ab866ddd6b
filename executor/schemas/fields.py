"""Field types shared by several schemas."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields


class RecordIdField(fields.Field[list[Any]]):
    """A record id as stored: a non-empty JSON array of strings and numbers."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a non-empty array of strings and numbers.")
        for part in value:
            if isinstance(part, bool) or not isinstance(part, str | int | float):
                raise ValidationError("Must be a non-empty array of strings and numbers.")
        return list(value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class StrictString(fields.String):
    """A string that must really be a string (marshmallow would accept nothing else anyway, but
    this makes the intent explicit and rejects empty values when asked)."""

    def __init__(self, *, non_empty: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._non_empty = non_empty

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        if self._non_empty and not value:
            raise ValidationError("Must not be empty.")
        return value


class JsonValue(fields.Raw):
    """Any JSON value, ``null`` included."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)


class LiteralTrue(fields.Field[bool]):
    """A flag that is either absent or the JSON literal ``true`` (``skipped: true``).

    ``fields.Boolean`` would also accept ``1``, ``"yes"`` or ``"true"``; since a store document is
    kept as given, such a value would be stored and served with the wrong type.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value is not True:
            raise ValidationError("Must be true.")
        return value


class StrictBoolean(fields.Field[bool]):
    """A JSON boolean: ``true`` or ``false``, nothing that merely looks like one."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value

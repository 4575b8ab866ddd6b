"""Coercing a value to a field's type before it is written (protocol §7.4)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from executor.domain.collections import ColumnType, FieldSchema
from executor.errors import FieldTypeMissing, StepStateError

_STRING_TYPES = frozenset({"String", "Uuid", "Time", "Timeonly", "Binary", "File"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def coerce_value(field: FieldSchema, value: Any) -> Any:
    """``value`` as ``field``'s type wants it; ``null`` and relationships pass through.

    A value that does not fit is a *StepState* error; a field without a type cannot be written.
    """
    if value is None or field.is_relationship:
        return value
    if field.type is None:
        raise FieldTypeMissing(f"Field {field.name} has no type")
    return _coerce(field.type, value, field)


def _coerce(column: ColumnType, value: Any, field: FieldSchema) -> Any:
    if isinstance(column, list):
        if not isinstance(value, list):
            raise _mismatch(field, value, "a list")
        return [_coerce(column[0], item, field) for item in value]
    if isinstance(column, dict):
        return _json_text(value, field)
    if column == "Boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise _mismatch(field, value, "a boolean")
    if column == "Number":
        return _number(value, field)
    if column == "Enum":
        allowed = field.enum_values
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            raise _mismatch(field, value, f"one of {list(allowed or ())}")
        return value
    if column == "Date":
        return _iso(value, field, datetime.fromisoformat, "an ISO-8601 date-time")
    if column == "Dateonly":
        return _iso(value, field, _iso_date, "an ISO-8601 date")
    if column == "Json":
        return _json_text(value, field)
    if column == "Point":
        if isinstance(value, list) and len(value) == 2 and all(_is_number(part) for part in value):
            return value
        raise _mismatch(field, value, "[longitude, latitude]")
    if column in _STRING_TYPES:
        if isinstance(value, str):
            return value
        raise _mismatch(field, value, "a string")
    raise _mismatch(field, value, f"a {column}")


def _number(value: Any, field: FieldSchema) -> int | float:
    if _is_number(value):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _mismatch(field, value, "a number") from None
        if number.is_integer() and "." not in value and "e" not in value.lower():
            number = int(number)
    else:
        raise _mismatch(field, value, "a number")
    if not math.isfinite(number):
        raise _mismatch(field, value, "a finite number")
    return number  # type: ignore[no-any-return]


def _iso(value: Any, field: FieldSchema, parse: Callable[[str], object], expected: str) -> str:
    if isinstance(value, str):
        try:
            parse(value)
            return value
        except ValueError:
            pass
    raise _mismatch(field, value, expected)


def _iso_date(text: str) -> date:
    # fromisoformat also takes the basic form 20260131; the protocol means YYYY-MM-DD.
    if not _DATE.match(text):
        raise ValueError(text)
    return date.fromisoformat(text)


def _json_text(value: Any, field: FieldSchema) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            pass
    raise _mismatch(field, value, "a JSON string")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mismatch(field: FieldSchema, value: Any, expected: str) -> StepStateError:
    # The value itself stays out of the message: it is customer data and messages reach logs.
    return StepStateError(
        f"Value for field {field.name} is not {expected} (got {type(value).__name__})"
    )

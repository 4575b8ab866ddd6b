"""Values coerced to a field's type before they are written (protocol §7.4)."""

from __future__ import annotations

from typing import Any

import pytest

from executor.domain.collections import FieldSchema, RelationType
from executor.errors import FieldTypeMissing, StepStateError
from executor.steps.coercion import coerce_value


def field(column: Any, enum_values: tuple[str, ...] | None = None) -> FieldSchema:
    return FieldSchema("f", "F", is_relationship=False, type=column, enum_values=enum_values)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("Boolean", True, True),
        ("Boolean", "false", False),
        ("Number", 42, 42),
        ("Number", "42", 42),
        ("Number", "4.5", 4.5),
        ("Number", 1.25, 1.25),
        ("Date", "2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),
        ("Dateonly", "2026-01-31", "2026-01-31"),
        ("Json", '{"a": 1}', '{"a": 1}'),
        ({"street": "String"}, '{"street": "x"}', '{"street": "x"}'),
        ("Point", [2.35, 48.85], [2.35, 48.85]),
        (["Number"], ["1", 2], [1, 2]),
        ([["String"]], [["a"], ["b"]], [["a"], ["b"]]),
        ("String", "hello", "hello"),
        ("Uuid", "0b0e5c2e-8d0a-4e8e-9a57-4a3c1c6d2f10", "0b0e5c2e-8d0a-4e8e-9a57-4a3c1c6d2f10"),
        ("Time", "10:00", "10:00"),
        ("File", "data:text/plain;base64,aGk=", "data:text/plain;base64,aGk="),
        ("String", None, None),
    ],
)
def test_values_that_fit_are_kept_or_converted(column: Any, value: Any, expected: Any) -> None:
    assert coerce_value(field(column), value) == expected


def test_enum_values_must_be_one_of_the_choices() -> None:
    tier = field("Enum", ("bronze", "gold"))
    assert coerce_value(tier, "gold") == "gold"
    with pytest.raises(StepStateError):
        coerce_value(tier, "platinum")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("Boolean", "yes"),
        ("Boolean", 1),
        ("Number", "forty"),
        ("Number", True),
        ("Number", "inf"),
        ("Date", "tomorrow"),
        ("Dateonly", "2026-01-01T10:00:00"),
        ("Dateonly", "20260101"),
        ("Json", {"a": 1}),
        ("Json", "{not json"),
        ("Point", [1]),
        ("Point", ["1", "2"]),
        (["Number"], "1"),
        ("String", 3),
    ],
)
def test_values_that_do_not_fit_are_a_step_state_error(column: Any, value: Any) -> None:
    with pytest.raises(StepStateError) as raised:
        coerce_value(field(column), value)
    assert repr(value) not in str(raised.value)  # customer data stays out of messages


def test_a_field_without_a_type_cannot_be_written() -> None:
    with pytest.raises(FieldTypeMissing):
        coerce_value(field(None), "x")


def test_relationships_pass_through() -> None:
    relation = FieldSchema(
        "company", "Company", is_relationship=True, relation_type=RelationType.BELONGS_TO
    )
    assert coerce_value(relation, {"id": 3}) == {"id": 3}

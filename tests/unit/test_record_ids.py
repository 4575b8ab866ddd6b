"""Record ids and their pipe-joined form (protocol §2.1)."""

from __future__ import annotations

from typing import Any

import pytest

from executor.domain.ids import join_record_id, split_record_id
from executor.errors import RecordIdSerialization


@pytest.mark.parametrize(
    ("record_id", "joined"),
    [
        (["123"], "123"),
        ([42], "42"),
        ([42.0], "42"),
        ([-7.0], "-7"),
        ([0], "0"),
        ([1.5], "1.5"),
        (["A1", "2024"], "A1|2024"),
        (["A1", 2024], "A1|2024"),
        ([3, "x", 4.0], "3|x|4"),
        ([""], ""),
        (["a b", "ü/é"], "a b|ü/é"),
    ],
)
def test_join_converts_each_part_to_a_string_and_joins_with_a_pipe(
    record_id: list[Any], joined: str
) -> None:
    assert join_record_id(record_id) == joined


def test_join_accepts_any_sequence() -> None:
    assert join_record_id(("A1", 2024)) == "A1|2024"


@pytest.mark.parametrize("record_id", [["a|b"], ["ok", "x|"], ["|"], [1, "2|3"]])
def test_join_fails_when_a_part_contains_a_pipe(record_id: list[Any]) -> None:
    with pytest.raises(RecordIdSerialization) as caught:
        join_record_id(record_id)

    assert caught.value.user_message == (
        "A record identifier contains an unsupported character and cannot be processed."
    )


@pytest.mark.parametrize("part", [True, False])
def test_join_rejects_booleans(part: bool) -> None:
    with pytest.raises(RecordIdSerialization):
        join_record_id([part])


def test_join_does_not_modify_its_input() -> None:
    record_id: list[Any] = ["A1", 42.0]

    join_record_id(record_id)

    assert record_id == ["A1", 42.0]


@pytest.mark.parametrize(
    ("joined", "record_id"),
    [
        ("123", ["123"]),
        ("42", ["42"]),  # numbers are not restored
        ("A1|2024", ["A1", "2024"]),
        ("a||b", ["a", "", "b"]),  # empty segments are kept (only the trigger body rejects them)
        ("|", ["", ""]),
        ("", [""]),
        ("1.5|-3", ["1.5", "-3"]),
    ],
)
def test_split_is_a_plain_split_into_strings(joined: str, record_id: list[str]) -> None:
    parts = split_record_id(joined)

    assert parts == record_id
    assert all(type(part) is str for part in parts)


@pytest.mark.parametrize("record_id", [["123"], ["A1", "2024"], ["a", "", "b"]])
def test_split_undoes_join_for_string_parts(record_id: list[Any]) -> None:
    assert split_record_id(join_record_id(record_id)) == record_id


def test_split_of_a_joined_numeric_id_gives_strings() -> None:
    assert split_record_id(join_record_id([7, 8.0])) == ["7", "8"]

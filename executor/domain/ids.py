"""Record identifiers and their pipe-joined wire form (protocol §2.1); the range of the Forest
server's numeric ids."""

from __future__ import annotations

from collections.abc import Sequence

from executor.errors import RecordIdSerialization

RecordIdPart = str | int | float
RecordId = list[RecordIdPart]

SEPARATOR = "|"

# User and rendering ids are JSON numbers that the orchestrator and the agent handle as JavaScript
# numbers: beyond 2**53 - 1 they lose precision there and could name another user, so a larger id
# is refused (a 401 for a token, a malformed run for a run) rather than carried along.
MAX_NUMERIC_ID = 2**53 - 1


def join_record_id(record_id: Sequence[RecordIdPart]) -> str:
    """Pipe-join a record id; a part that itself contains ``|`` cannot be represented."""
    parts = [_part_to_str(part) for part in record_id]
    for part in parts:
        if SEPARATOR in part:
            raise RecordIdSerialization(f"Record id part {part!r} contains {SEPARATOR!r}")
    return SEPARATOR.join(parts)


def split_record_id(joined: str) -> list[RecordIdPart]:
    """Split a pipe-joined id into string parts (numbers are not restored)."""
    return list(joined.split(SEPARATOR))


def _part_to_str(part: RecordIdPart) -> str:
    if isinstance(part, bool):
        raise RecordIdSerialization(f"Record id part {part!r} is not a string or a number")
    if isinstance(part, float) and part.is_integer():
        return str(int(part))  # the agent may send 42.0 for 42; JavaScript prints it as "42"
    return str(part)

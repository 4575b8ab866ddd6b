"""Records read from the agent, action forms, and the audit trail's vocabulary."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from executor.domain.ids import RecordId


@dataclass(frozen=True)
class RecordData:
    """What a read returns: the record's values under their technical field names."""

    collection_name: str
    record_id: RecordId
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RelatedRecord:
    """The record at the end of a to-one relation, with its projected label value."""

    record_id: RecordId
    label: Any = None


@dataclass(frozen=True)
class ActionForm:
    """An action form as the agent describes it: its fields verbatim (PlainField objects, so they
    can be sent back to a change hook unchanged) and its layout."""

    fields: tuple[dict[str, Any], ...]
    layout: tuple[dict[str, Any], ...] | None = None


class AuditAction(enum.StrEnum):
    INDEX = "index"  # read one record
    LIST_RELATED_DATA = "listRelatedData"
    UPDATE = "update"
    ACTION = "action"


@dataclass(frozen=True)
class ActivityLogEntry:
    """One audited data access (protocol §9)."""

    action: AuditAction
    type: str  # read | write
    rendering_id: int
    collection_id: str | None
    records: tuple[str, ...] = ()  # pipe-joined ids
    label: str | None = None


@dataclass(frozen=True)
class ActivityLogHandle:
    id: str
    index: str

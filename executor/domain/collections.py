"""Collection schemas as the orchestrator describes them for a rendering (protocol §2.8)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class RelationType(enum.StrEnum):
    BELONGS_TO = "BelongsTo"
    HAS_MANY = "HasMany"
    HAS_ONE = "HasOne"
    BELONGS_TO_MANY = "BelongsToMany"

    @property
    def is_to_one(self) -> bool:
        return self in (RelationType.BELONGS_TO, RelationType.HAS_ONE)


# A column type: a primitive name ("String"), a list ([ColumnType]) or a composite {key: type}.
ColumnType = str | list[Any] | dict[str, Any]


@dataclass(frozen=True)
class FieldSchema:
    name: str  # technical name, exactly as the agent knows it
    display_name: str
    is_relationship: bool
    relation_type: RelationType | None = None
    related_collection_name: str | None = None
    polymorphic_type_field: str | None = None
    polymorphic_referenced_models: tuple[str, ...] = ()
    type: ColumnType | None = None
    enum_values: tuple[str, ...] | None = None

    @property
    def is_followable(self) -> bool:
        """A relation the load-related-record step can follow."""
        return self.is_relationship and bool(
            self.related_collection_name or self.polymorphic_type_field
        )

    @property
    def is_writable(self) -> bool:
        return not self.is_relationship and self.type is not None


@dataclass(frozen=True)
class ActionSchema:
    name: str  # technical name
    display_name: str
    endpoint: str  # agent path, e.g. /forest/_actions/customers/0/send-invoice
    type: str | None = None  # single | bulk | global
    fields: tuple[dict[str, Any], ...] | None = None  # static form fields, opaque
    layout: tuple[dict[str, Any], ...] | None = None
    load_hook: bool | None = None  # hooks.load; None when the schema has no hooks
    change_hooks: tuple[Any, ...] = ()

    @property
    def is_global(self) -> bool:
        return self.type == "global"


@dataclass(frozen=True)
class CollectionSchema:
    name: str
    collection_id: str
    display_name: str
    primary_key_fields: tuple[str, ...]
    reference_field: str | None
    fields: tuple[FieldSchema, ...]
    actions: tuple[ActionSchema, ...] = field(default=())

    def field_named(self, name: str) -> FieldSchema | None:
        """The field with this exact technical name."""
        return next((f for f in self.fields if f.name == name), None)

    def action_named(self, name: str) -> ActionSchema | None:
        return next((a for a in self.actions if a.name == name), None)

    @property
    def readable_fields(self) -> tuple[FieldSchema, ...]:
        return tuple(f for f in self.fields if not f.is_relationship)

    @property
    def followable_fields(self) -> tuple[FieldSchema, ...]:
        return tuple(f for f in self.fields if f.is_followable)

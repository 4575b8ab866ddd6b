"""The orchestrator's collection-schema document (protocol §2.8, §3.3.4) → domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from executor.domain.collections import ActionSchema, CollectionSchema, FieldSchema, RelationType
from executor.errors import DomainValidation
from executor.schemas.fields import StrictBoolean, StrictString

_PRIMITIVES = frozenset(
    {
        "Boolean",
        "Binary",
        "Date",
        "Dateonly",
        "Enum",
        "File",
        "Json",
        "Number",
        "Point",
        "String",
        "Time",
        "Timeonly",
        "Uuid",
    }
)


class _Open(Schema):
    class Meta:
        unknown = EXCLUDE  # the orchestrator deploys independently: unknown keys are ignored


class _FieldSchema(_Open):
    fieldName = StrictString(required=True, non_empty=True)
    displayName = StrictString(required=True, non_empty=True)
    isRelationship = StrictBoolean(required=True)
    relationType = StrictString(
        allow_none=True, validate=validate.OneOf([t.value for t in RelationType])
    )
    relatedCollectionName = StrictString(allow_none=True)
    polymorphicTypeField = StrictString(allow_none=True)
    polymorphicReferencedModels = fields.List(StrictString(), allow_none=True)
    type = fields.Raw(allow_none=True)
    enumValues = fields.List(StrictString(), allow_none=True, validate=validate.Length(min=1))


class _Hooks(_Open):
    load_ = StrictBoolean(data_key="load")
    change = fields.List(fields.Raw())


def _agent_path(endpoint: str) -> None:
    # The endpoint is appended to AGENT_URL; anything but a path (an absolute or protocol-relative
    # URL) would send the agent's JWT to another host.
    if not endpoint.startswith("/") or endpoint.startswith("//") or "://" in endpoint:
        raise ValidationError("Must be a path on the agent, such as /forest/_actions/...")


class _ActionSchema(_Open):
    name = StrictString(required=True, non_empty=True)
    displayName = StrictString(required=True, non_empty=True)
    endpoint = StrictString(required=True, non_empty=True, validate=_agent_path)
    type = StrictString(allow_none=True, validate=validate.OneOf(["single", "bulk", "global"]))
    fields_ = fields.List(fields.Dict(), allow_none=True, data_key="fields")
    layout = fields.List(fields.Dict(), allow_none=True)
    hooks = fields.Nested(_Hooks, allow_none=True)


class _CollectionSchema(_Open):
    collectionName = StrictString(required=True, non_empty=True)
    collectionId = fields.Raw(required=True)
    collectionDisplayName = StrictString(allow_none=True)
    primaryKeyFields = fields.List(
        StrictString(non_empty=True), required=True, validate=validate.Length(min=1)
    )
    referenceField = StrictString(allow_none=True)
    fields_ = fields.List(fields.Nested(_FieldSchema), required=True, data_key="fields")
    actions = fields.List(fields.Nested(_ActionSchema), allow_none=True)


_SCHEMA = _CollectionSchema()


def map_collection_schema(payload: Any) -> CollectionSchema:
    """Validate and normalize; a schema breaking the rules is a *DomainValidation* error."""
    try:
        data = _SCHEMA.load(payload)
        collection_id = data["collectionId"]
        if isinstance(collection_id, bool) or not isinstance(collection_id, str | int):
            raise ValidationError({"collectionId": ["Not a string."]})
        if str(collection_id) == "":
            raise ValidationError({"collectionId": ["Must not be empty."]})
        return CollectionSchema(
            name=data["collectionName"],
            collection_id=str(collection_id),
            display_name=data.get("collectionDisplayName") or data["collectionName"],
            primary_key_fields=tuple(data["primaryKeyFields"]),
            reference_field=data.get("referenceField") or None,
            fields=tuple(_field(f) for f in data["fields_"]),
            actions=tuple(_action(a) for a in data.get("actions") or ()),
        )
    except ValidationError as error:
        raise DomainValidation(f"Invalid collection schema: {error.messages}") from error


def _field(data: Mapping[str, Any]) -> FieldSchema:
    related = data.get("relatedCollectionName")
    if related and "." in related:
        related = related.rsplit(".", 1)[0]  # "store.id" names the collection "store"
    relation = data.get("relationType")
    return FieldSchema(
        name=data["fieldName"],
        display_name=data["displayName"],
        is_relationship=data["isRelationship"],
        relation_type=RelationType(relation) if relation else None,
        related_collection_name=related or None,
        polymorphic_type_field=data.get("polymorphicTypeField") or None,
        polymorphic_referenced_models=tuple(data.get("polymorphicReferencedModels") or ()),
        type=normalize_column_type(data.get("type")),
        enum_values=tuple(data["enumValues"]) if data.get("enumValues") else None,
    )


def normalize_column_type(raw: Any) -> Any:
    """A ColumnType, with the orchestrator's ``{"fields": [{field, type}]}`` composite form
    turned into ``{field: type}`` (recursively)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw not in _PRIMITIVES:
            raise ValidationError({"type": [f"Unknown column type {raw!r}."]})
        return raw
    if isinstance(raw, list):
        if len(raw) != 1:
            raise ValidationError({"type": ["A list type has exactly one element type."]})
        return [normalize_column_type(raw[0])]
    if isinstance(raw, Mapping):
        if isinstance(raw.get("fields"), list):
            return {
                str(item["field"]): normalize_column_type(item["type"])
                for item in raw["fields"]
                if isinstance(item, Mapping) and "field" in item and "type" in item
            }
        return {str(key): normalize_column_type(value) for key, value in raw.items()}
    raise ValidationError({"type": ["Not a column type."]})


def _action(data: Mapping[str, Any]) -> ActionSchema:
    hooks = data.get("hooks") or None
    static_fields = data.get("fields_")
    layout = data.get("layout")
    return ActionSchema(
        name=data["name"],
        display_name=data["displayName"],
        endpoint=data["endpoint"],
        type=data.get("type"),
        fields=tuple(static_fields) if static_fields is not None else None,
        layout=tuple(layout) if layout is not None else None,
        load_hook=hooks.get("load_") if hooks else None,
        change_hooks=tuple(hooks.get("change") or ()) if hooks else (),
    )

"""The tools offered to the AI, their argument schemas, and reading names back (protocol §7.1.3,
§7.1.7, §7.4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from executor.domain.ai import ToolDefinition
from executor.domain.collections import ActionSchema, ColumnType, FieldSchema

T = TypeVar("T", FieldSchema, ActionSchema)

NULL = {"type": "null"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, NULL]}


def value_schema(field: FieldSchema) -> dict[str, Any]:
    """What the AI may return as a value of ``field`` (its type schema, §7.4)."""
    return _column_schema(field.type, field)


def _column_schema(column: ColumnType | None, field: FieldSchema) -> dict[str, Any]:
    if isinstance(column, list):
        inner = column[0]
        if isinstance(inner, list):  # [[T]]: a list of JSON strings
            return {"type": "array", "items": {"type": "string", "description": "JSON"}}
        return {"type": "array", "items": _column_schema(inner, field)}
    if isinstance(column, dict) or column == "Json":
        return {"type": "string", "description": "A string containing valid JSON"}
    if column == "Boolean":
        return {"type": "boolean"}
    if column == "Number":
        return {"type": "number"}
    if column == "Date":
        return {"type": "string", "format": "date-time"}
    if column == "Dateonly":
        return {"type": "string", "format": "date"}
    if column == "Point":
        return {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 2,
            "maxItems": 2,
            "description": "[longitude, latitude]",
        }
    if column == "Enum":
        values = list(field.enum_values or ())
        if len(values) == 1:
            return {"type": "string", "const": values[0]}
        return {"type": "string", "enum": values} if values else {"type": "string"}
    return {"type": "string"}


def _normalized(name: str) -> str:
    return "".join(c for c in name.lower() if c not in " _-")


def resolve_name(answer: str, candidates: Sequence[T]) -> T | None:
    """Read a name the AI gave back: exact display name, exact technical name, then the one
    candidate matching once case, spaces, ``_`` and ``-`` are ignored."""
    for candidate in candidates:
        if candidate.display_name == answer:
            return candidate
    for candidate in candidates:
        if candidate.name == answer:
            return candidate
    fuzzy = [
        c
        for c in candidates
        if _normalized(answer) in (_normalized(c.display_name), _normalized(c.name))
    ]
    return fuzzy[0] if len(fuzzy) == 1 else None


def record_label(step_index: int, collection_display_name: str, record_id: Sequence[Any]) -> str:
    return f"Step {step_index} - {collection_display_name} #{','.join(str(p) for p in record_id)}"


# --- the catalogue -------------------------------------------------------------------------------


def choose_gateway_option(options: Sequence[str]) -> ToolDefinition:
    return ToolDefinition(
        "choose-gateway-option",
        "Select the option that answers the question. Use null if no option matches or you are "
        "uncertain. Explain your reasoning.",
        {
            "type": "object",
            "required": ["reasoning", "question", "option"],
            "properties": {
                "reasoning": {"type": "string", "description": "The reasoning behind the choice"},
                "question": {
                    "type": "string",
                    "description": "The question to answer by choosing an option",
                },
                "option": {
                    "anyOf": [{"type": "string", "enum": list(options)}, NULL],
                    "description": "The chosen option, or null if no option clearly answers the "
                    "question.",
                },
            },
        },
    )


def select_record(labels: Sequence[str]) -> ToolDefinition:
    return ToolDefinition(
        "select-record",
        "Select the most relevant record for this workflow step.",
        {
            "type": "object",
            "required": ["recordIdentifier"],
            "properties": {"recordIdentifier": {"type": "string", "enum": list(labels)}},
        },
    )


def read_selected_record_fields(fields: Sequence[FieldSchema]) -> ToolDefinition:
    names = ", ".join(f'"{f.display_name}"' for f in fields)
    return ToolDefinition(
        "read-selected-record-fields",
        "Read one or more fields from the selected record.",
        {
            "type": "object",
            "required": ["fieldNames"],
            "properties": {
                "fieldNames": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": f"Names of the fields to read, possible values are: {names}",
                }
            },
        },
    )


def update_record_field(fields: Sequence[FieldSchema]) -> ToolDefinition:
    variants = [
        {
            "type": "object",
            "required": ["fieldName", "value", "reasoning"],
            "properties": {
                "fieldName": {"const": f.display_name},
                "value": nullable(value_schema(f)),
                "reasoning": {
                    "type": "string",
                    "description": "Why this field and value were chosen",
                },
            },
        }
        for f in fields
    ]
    return ToolDefinition(
        "update-record-field",
        "Update a field on the selected record.",
        {
            "type": "object",
            "required": ["input"],
            "properties": {"input": variants[0] if len(variants) == 1 else {"anyOf": variants}},
        },
    )


def set_record_field_value(field: FieldSchema) -> ToolDefinition:
    return ToolDefinition(
        "set-record-field-value",
        f'Provide the new value for the "{field.display_name}" field.',
        {
            "type": "object",
            "required": ["reasoning", "value"],
            "properties": {
                "reasoning": {"type": "string"},
                "value": nullable(value_schema(field)),
            },
        },
    )


def select_action(actions: Sequence[ActionSchema]) -> ToolDefinition:
    listing = ", ".join(f"{a.display_name} (technical name: {a.name})" for a in actions)
    return ToolDefinition(
        "select-action",
        "Select the action to trigger on the record.",
        {
            "type": "object",
            "required": ["actionName", "reasoning"],
            "properties": {
                "actionName": {
                    "type": "string",
                    "enum": [a.display_name for a in actions],
                    "description": f"The name of the action to trigger. Available: {listing}",
                },
                "reasoning": {"type": "string"},
            },
        },
    )


def fill_action_form() -> ToolDefinition:
    return ToolDefinition(
        "fill_action_form",
        "Fill the action form. Return a `values` object keyed by field name. Leave out every "
        "field you are not sure about; never guess. For a single-choice field give one of its "
        "allowed values; for a multi-select or list field, an array of allowed values. Give "
        "values, not labels.",
        {
            "type": "object",
            "properties": {"values": {"type": "object", "additionalProperties": True}},
        },
    )


def select_relation_to_follow(labels: Sequence[str]) -> ToolDefinition:
    return ToolDefinition(
        "select-relation-to-follow",
        "Select the relation to follow to load the requested related record.",
        {
            "type": "object",
            "required": ["relation", "reasoning"],
            "properties": {
                "relation": {"type": "string", "enum": list(labels)},
                "reasoning": {"type": "string"},
            },
        },
    )


def select_fields(display_names: Sequence[str]) -> ToolDefinition:
    return ToolDefinition(
        "select-fields",
        "Select the most relevant fields to identify the right record.",
        {
            "type": "object",
            "required": ["fieldNames"],
            "properties": {
                "fieldNames": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 6,
                    "items": {"type": "string", "enum": list(display_names)},
                }
            },
        },
    )


def select_record_by_content(shown: int, *, none_allowed: bool) -> ToolDefinition:
    return ToolDefinition(
        "select-record-by-content",
        "Select the most relevant related record by its index.",
        {
            "type": "object",
            "required": ["recordIndex", "confident", "reasoning"],
            "properties": {
                "recordIndex": {
                    "type": "integer",
                    "minimum": -1 if none_allowed else 0,
                    "maximum": shown - 1,
                },
                "confident": {"type": "boolean"},
                "reasoning": {"type": "string"},
            },
        },
    )


def submit_guidance_response() -> ToolDefinition:
    return ToolDefinition(
        "submit_guidance_response",
        "Submit the free-text response for this workflow step.",
        {
            "type": "object",
            "required": ["response"],
            "properties": {"response": {"type": "string"}},
        },
    )


def summarize_result() -> ToolDefinition:
    return ToolDefinition(
        "summarize-result",
        "Provides a human-readable summary of the tool execution result.",
        {
            "type": "object",
            "required": ["summary"],
            "properties": {"summary": {"type": "string", "minLength": 1}},
        },
    )

"""Action forms: opened from the schema or the agent, filled with change hooks re-applied, and
flattened for the run store (protocol §2.9, §4.8)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from executor.domain.collections import ActionSchema
from executor.domain.records import ActionForm
from executor.errors import ActionFormValidation
from executor.steps.audit import AuditedAgent


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as the front prints it
    return str(value)


def flatten_field(field: Mapping[str, Any]) -> dict[str, Any]:
    """The executor's view of one agent form field (§2.9)."""
    flat: dict[str, Any] = {
        "name": field.get("field"),
        "type": field.get("type"),
        "value": field.get("value"),
        "isRequired": bool(field.get("isRequired", False)),
    }
    if field.get("description"):
        flat["description"] = field["description"]
    if field.get("type") == "Enum" and field.get("enums"):
        flat["enumValues"] = list(field["enums"])
    else:
        options = (
            ((field.get("widgetEdit") or {}).get("parameters") or {}).get("static") or {}
        ).get("options")
        if options:
            flat["allowedValues"] = [
                {"value": o.get("value"), "label": o.get("label")}
                if isinstance(o, Mapping)
                else {"value": o, "label": _label(o)}
                for o in options
            ]
    return flat


class FormSession:
    """One action form being filled for one record (or none, for a global action)."""

    def __init__(
        self,
        agent: AuditedAgent,
        action: ActionSchema,
        collection_name: str,
        ids: Sequence[str],
        form: ActionForm,
    ) -> None:
        self._agent = agent
        self._action = action
        self._collection_name = collection_name
        self._ids = list(ids)
        self._form = form

    @classmethod
    def open(
        cls, agent: AuditedAgent, action: ActionSchema, collection_name: str, ids: Sequence[str]
    ) -> FormSession | None:
        """The form in its initial state; ``None`` when the action has no form."""
        form: ActionForm | None
        if action.load_hook is False and action.fields is not None:
            form = _static_form(action)
        else:
            form = agent.load_action_form(action, collection_name, ids) or _static_form(action)
        if not form.fields:
            return None
        return cls(agent, action, collection_name, ids, form)

    @property
    def fields(self) -> tuple[dict[str, Any], ...]:
        return self._form.fields

    def set_values(self, values: Mapping[str, Any], *, strict: bool) -> list[str]:
        """Set each value, firing the field's change hook; returns the names skipped because the
        form has no such field (strict: such a name is an *ActionFormValidation* error)."""
        skipped = []
        for name, value in values.items():
            index = next(
                (i for i, f in enumerate(self._form.fields) if f.get("field") == name), None
            )
            if index is None:
                if strict:
                    raise ActionFormValidation(
                        f"The form of {self._action.name} has no field {name}"
                    )
                skipped.append(name)
                continue
            fields = [dict(f) for f in self._form.fields]
            fields[index]["value"] = value
            self._form = ActionForm(tuple(fields), self._form.layout)
            if fields[index].get("hook"):
                self._form = self._agent.change_action_form(
                    self._action, self._collection_name, self._ids, name, fields
                )
        return skipped

    def values(self) -> dict[str, Any]:
        """Every field whose value is set: what execution submits."""
        return {f["field"]: f["value"] for f in self._form.fields if f.get("value") is not None}

    def inputs(self) -> list[dict[str, Any]]:
        """Every current field as an approval request lists it."""
        return [
            {"name": f.get("field"), "type": f.get("type"), "value": f.get("value")}
            for f in self._form.fields
        ]

    def flattened(self) -> list[dict[str, Any]]:
        return [flatten_field(f) for f in self._form.fields]

    @property
    def required_fields(self) -> list[str]:
        return [
            f["field"] for f in self._form.fields if f.get("isRequired") and f.get("value") is None
        ]

    @property
    def can_execute(self) -> bool:
        return not self.required_fields


def _static_form(action: ActionSchema) -> ActionForm:
    fields = []
    for declared in action.fields or ():
        field = copy.deepcopy(dict(declared))
        field.setdefault("isRequired", False)
        field.setdefault("isReadOnly", False)
        field["value"] = declared.get("defaultValue")
        fields.append(field)
    return ActionForm(tuple(fields), action.layout)

"""read-record: read fields of a record into the run store (protocol §7.3)."""

from __future__ import annotations

from typing import Any

from executor.domain.collections import CollectionSchema
from executor.domain.outcomes import StepOutcome
from executor.errors import NoReadableFields, NoResolvedFields
from executor.steps import prompts, tools
from executor.steps.record_step import RecordStep


class ReadRecordStep(RecordStep):
    def execute(self) -> StepOutcome:
        source = self.source_record()
        schema = self.schemas.get(source.collection_name)
        pre = self.step.definition.pre_recorded_args
        if pre is not None and pre.field_names:
            requested = list(pre.field_names)  # technical names, matched exactly
        else:
            requested = self._ai_fields(schema)
        readable = {f.name: f for f in schema.readable_fields}
        if any(name not in readable for name in requested):
            # The schema may have changed since it was cached: look once more before failing.
            schema = self.schemas.get(source.collection_name, fresh=True)
            readable = {f.name: f for f in schema.readable_fields}
        resolved = [readable[name] for name in requested if name in readable]
        if not resolved:
            raise NoResolvedFields(f"None of {requested} is a readable field of {schema.name}")

        record = self.agent.read_record(schema, source.record_id, [f.name for f in resolved])
        results: list[dict[str, Any]] = []
        for name in requested:
            field = readable.get(name)
            if field is None:
                results.append(
                    {"name": name, "displayName": name, "error": f"Field not found: {name}"}
                )
            else:
                results.append(
                    {
                        "name": field.name,
                        "displayName": field.display_name,
                        "value": record.values.get(field.name),
                    }
                )
        self.save(
            {
                **self.base_entry(source),
                "executionParams": {
                    "fields": [{"name": f.name, "displayName": f.display_name} for f in resolved]
                },
                "executionResult": {"fields": results},
            }
        )
        return self.success()

    def _ai_fields(self, schema: CollectionSchema) -> list[str]:
        """The fields the AI chooses, as technical names (an unknown answer is kept as it is, and
        becomes an error entry)."""
        readable = schema.readable_fields
        if not readable:
            raise NoReadableFields(f"{schema.name} has no readable field")
        answer = self.ai.decide(
            tools.read_selected_record_fields(readable),
            instructions=[prompts.READ_FIELDS, prompts.collection_line(schema.display_name)],
            request=f"**Request**: {self.request_text('Read the relevant fields.')}",
        )
        names = []
        for given in answer["fieldNames"]:
            field = tools.resolve_name(given, readable)
            names.append(field.name if field is not None else given)
        return names

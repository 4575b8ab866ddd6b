"""read-record: read fields of a record into the run store (protocol §7.3)."""

from __future__ import annotations

from typing import Any

from executor.domain.outcomes import StepOutcome
from executor.errors import NoReadableFields, NoResolvedFields
from executor.steps.record_step import RecordStep


class ReadRecordStep(RecordStep):
    def execute(self) -> StepOutcome:
        source = self.source_record()
        schema = self.schemas.get(source.collection_name)
        pre = self.step.definition.pre_recorded_args
        if pre is not None and pre.field_names:
            requested = list(pre.field_names)  # technical names, matched exactly
        else:
            if not schema.readable_fields:
                raise NoReadableFields(f"{schema.name} has no readable field")
            requested = self.ai_decision("choose the fields to read")
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

"""load-related-record: follow a relation of a record to one related record, which later steps
can then use as their source (protocol §7.6)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from executor.domain.collections import CollectionSchema, FieldSchema
from executor.domain.executions import StepExecutionData
from executor.domain.ids import split_record_id
from executor.domain.outcomes import StepOutcome
from executor.domain.runs import RecordRef
from executor.domain.steps import ExecutionType
from executor.errors import (
    AiInvokeTimeout,
    AiModelUnavailable,
    InvalidAIResponse,
    InvalidPreRecordedArgs,
    MalformedToolCall,
    MissingToolCall,
    NoRelationshipFields,
    RelatedRecordNotFound,
    RelationNotFound,
    StepStateError,
)
from executor.schemas.pending import LoadRelatedConfirmationSchema
from executor.steps import prompts, tools
from executor.steps.history import compact_json
from executor.steps.record_step import ConfirmableStep, record_ref_document, record_ref_of
from executor.steps.sources import RecordSources

log = logging.getLogger(__name__)

LIST_LIMIT = 50
MAX_RANKING_FIELDS = 6
RANKING_VALUE_CHARS = 80
RANKING_BUDGET_CHARS = 16_000
TRUNCATED = "… (truncated)"
# Failures of an AI decision: the step then carries on without the AI (protocol §7.6).
AI_FAILURES = (
    AiModelUnavailable,
    AiInvokeTimeout,
    InvalidAIResponse,
    MalformedToolCall,
    MissingToolCall,
)


@dataclass(frozen=True)
class _Relation:
    """A relation that can be followed from one source record to a target collection."""

    source: RecordRef
    schema: CollectionSchema
    field: FieldSchema
    target: str

    @property
    def ref(self) -> dict[str, str]:
        return {"name": self.field.name, "displayName": self.field.display_name}


@dataclass
class _Proposal:
    relation: _Relation
    candidates: list[dict[str, Any]] = field(default_factory=list)
    suggestion: dict[str, Any] | None = None
    confident: bool = False


class LoadRelatedRecordStep(ConfirmableStep):
    confirmation_schema = LoadRelatedConfirmationSchema()

    @property
    def _ai_mode(self) -> bool:
        return self.step.definition.execution_type is not ExecutionType.MANUAL

    # --- first call -----------------------------------------------------------------------------

    def first_call(self) -> StepOutcome:
        degraded = False
        try:
            proposal = self._propose(use_ai=self._ai_mode)
        except AI_FAILURES as error:
            if not self._ai_mode:
                raise
            log.warning("Related record chosen without the AI: %s", error, extra=self._log_fields())
            proposal, degraded = self._propose(use_ai=False), True
        relation = proposal.relation
        if self.step.definition.execution_type is ExecutionType.FULLY_AUTOMATED and not degraded:
            if not proposal.candidates:
                self.save(
                    {
                        **self._base(relation.source),
                        "executionParams": relation.ref,
                        "executionResult": {"skipped": True},
                    }
                )
                return self.success()
            if proposal.suggestion is not None and proposal.confident:
                self.save(
                    {
                        **self._base(relation.source),
                        "pendingData": self._pending(proposal, degraded=False),
                        "executionParams": relation.ref,
                        "executionResult": self._result(relation, proposal.suggestion["recordId"]),
                    }
                )
                return self.success()
        self.save(
            {
                **self._base(relation.source),
                "pendingData": self._pending(proposal, degraded=degraded),
            }
        )
        return self.awaiting_input()

    def _propose(self, *, use_ai: bool) -> _Proposal:
        relations = self._relations()
        relation = relations[0]
        if len(relations) > 1 and use_ai:
            relation = self._ai_relation(relations)
        return self._candidates(relation, use_ai=use_ai)

    def _ai_relation(self, relations: list[_Relation]) -> _Relation:
        labels = {}
        for relation in relations:
            source = self.schemas.get(relation.source.collection_name)
            target = self.schemas.get(relation.target)
            label = tools.record_label(
                relation.source.step_index, source.display_name, relation.source.record_id
            )
            labels[f"{label} → {relation.field.display_name} (→ {target.display_name})"] = relation
        answer = self.ai.decide(
            tools.select_relation_to_follow(list(labels)),
            instructions=[prompts.SELECT_RELATION],
            request=f"**Request**: {self.request_text('Load the relevant related record.')}",
        )
        chosen = labels.get(answer["relation"])
        if chosen is None:
            raise InvalidAIResponse("The AI chose a relation that was not offered")
        return chosen

    def _relations(self) -> list[_Relation]:
        pre = self.step.definition.pre_recorded_args
        sources = RecordSources(self.step, self.context.run_store)
        if pre is not None and pre.selected_record_step_id:
            records = [sources.pinned(pre.selected_record_step_id)]
        else:
            records = sources.candidates()
        relations = [
            relation
            for record in records
            for relation in self._followable(record, self.schemas.get(record.collection_name))
        ]
        if not relations:
            raise NoRelationshipFields("No relation can be followed from the candidate records")
        if pre is not None and pre.relation_name:
            relations = [r for r in relations if r.field.name == pre.relation_name]
            if not relations:
                raise InvalidPreRecordedArgs(
                    f'No relation matching "{pre.relation_name}" on the selected record'
                )
        return relations

    def _followable(self, record: RecordRef, schema: CollectionSchema) -> list[_Relation]:
        found = []
        for relation_field in schema.followable_fields:
            target = self._target(record, schema, relation_field)
            if target is not None:
                found.append(_Relation(record, schema, relation_field, target))
        return found

    def _target(
        self, record: RecordRef, schema: CollectionSchema, relation_field: FieldSchema
    ) -> str | None:
        """The collection a relation leads to; for a polymorphic one, read from the record."""
        if relation_field.related_collection_name:
            return relation_field.related_collection_name
        if not relation_field.polymorphic_type_field:
            return None
        kind = self.agent.get_polymorphic_type(schema, record.record_id, relation_field.name)
        if kind is None:
            return None
        models = relation_field.polymorphic_referenced_models
        if kind in models:
            return kind
        return next((m for m in models if m.lower() == kind.lower()), None)

    def _candidates(self, relation: _Relation, *, use_ai: bool) -> _Proposal:
        related = self.schemas.get(relation.target)
        proposal = _Proposal(relation)
        reference = related.reference_field
        if relation.field.relation_type is not None and relation.field.relation_type.is_to_one:
            label_field = reference or related.primary_key_fields[0]
            linked = self.agent.get_related(
                relation.schema, relation.source.record_id, relation.field, label_field
            )
            if linked is not None:
                label = linked.label if reference else None
                candidate = _candidate(linked.record_id, label)
                proposal.candidates, proposal.suggestion, proposal.confident = (
                    [candidate],
                    candidate,
                    True,
                )
            return proposal
        pre = self.step.definition.pre_recorded_args
        rows = self.agent.list_related(
            relation.schema,
            relation.source.record_id,
            relation.field,
            related,
            limit=LIST_LIMIT,
            filters=pre.filters if pre is not None else None,
        )
        proposal.candidates = [
            _candidate(row.record_id, row.values.get(reference) if reference else None)
            for row in rows
        ]
        if use_ai and proposal.candidates:
            index, confident = self._ai_rank(related, [row.values for row in rows])
            if index >= 0:
                proposal.suggestion, proposal.confident = proposal.candidates[index], confident
            return proposal
        if len(proposal.candidates) == 1:
            proposal.suggestion, proposal.confident = proposal.candidates[0], True
        return proposal

    def _ai_rank(self, related: CollectionSchema, rows: list[dict[str, Any]]) -> tuple[int, bool]:
        """The index of the record the AI picks (-1: none fits) and whether it is confident.

        The AI first chooses the fields that tell records apart, then picks among the records
        shown with those fields, within a prompt budget; neither call sees previous steps."""
        readable = related.readable_fields
        shown_fields: list[str] = []
        request = f"**Request**: {self.request_text('Load the relevant related record.')}"
        if readable:
            answer = self.ai.decide(
                tools.select_fields([f.display_name for f in readable]),
                instructions=[prompts.SELECT_FIELDS],
                request=request,
                with_history=False,
            )
            for name in answer["fieldNames"][:MAX_RANKING_FIELDS]:
                field = tools.resolve_name(name, readable)
                if field is not None and field.name not in shown_fields:
                    shown_fields.append(field.name)
        display = {f.name: f.display_name for f in related.fields}  # the AI sees display names
        lines: list[str] = []
        used = 0
        for index, values in enumerate(rows):
            names = shown_fields or list(values)
            shown = {display.get(k, k): _cut(values.get(k)) for k in names}
            line = f"[{index}] {compact_json(shown)}"
            if lines and used + len(line) > RANKING_BUDGET_CHARS:
                break
            lines.append(line)
            used += len(line) + 1
        complete = len(lines) == len(rows)
        listing = "\n".join(lines)
        if complete:
            listing += "\nIf none of these records fits the request, answer -1."
        answer = self.ai.decide(
            tools.select_record_by_content(len(lines), none_allowed=complete),
            instructions=[prompts.SELECT_BY_CONTENT, listing],
            request=request,
            with_history=False,
        )
        return answer["recordIndex"], answer["confident"]

    # --- re-entry -------------------------------------------------------------------------------

    def unconfirmed(self, entry: StepExecutionData, confirmation: dict[str, Any]) -> StepOutcome:
        """A preview of another relation: recompute its candidates and wait again."""
        if "fieldName" not in confirmation:
            return self.awaiting_input()
        source = record_ref_of(entry["selectedRecordRef"])
        schema = self.schemas.get(source.collection_name)
        relation_field = schema.field_named(confirmation["fieldName"])
        if relation_field is None or not relation_field.is_followable:
            raise RelationNotFound(f"{schema.name} has no relation {confirmation['fieldName']}")
        target = self._target(source, schema, relation_field)
        if target is None:
            raise StepStateError(f"Relation {relation_field.name} leads to no collection")
        relation = _Relation(source, schema, relation_field, target)
        degraded = False
        try:
            proposal = self._candidates(relation, use_ai=self._ai_mode)
        except AI_FAILURES as error:
            if not self._ai_mode:
                raise
            log.warning(
                "Related records listed without the AI: %s", error, extra=self._log_fields()
            )
            proposal, degraded = self._candidates(relation, use_ai=False), True
        pending = self._pending(proposal, degraded=degraded)
        pending["availableFields"] = entry["pendingData"]["availableFields"]
        updated = {k: v for k, v in entry.items() if k != "userConfirmation"}
        self.save({**updated, "pendingData": pending})
        return self.awaiting_input()

    def confirmed(self, entry: StepExecutionData, confirmation: dict[str, Any]) -> StepOutcome:
        pending = entry["pendingData"]
        if "fieldName" in confirmation:
            relation_ref = next(
                (f for f in pending["availableFields"] if f["name"] == confirmation["fieldName"]),
                None,
            )
            if relation_ref is None:
                raise StepStateError(f"{confirmation['fieldName']} is not an offered relation")
        else:
            relation_ref = pending["suggestedField"]
        if "selectedRecordId" in confirmation:
            record_id = split_record_id(confirmation["selectedRecordId"])
        elif pending.get("suggestedRecord"):
            record_id = pending["suggestedRecord"]["recordId"]
        else:
            raise RelatedRecordNotFound("Neither a chosen nor a suggested related record")
        source = record_ref_of(entry["selectedRecordRef"])
        schema = self.schemas.get(source.collection_name)
        relation_field = schema.field_named(relation_ref["name"])
        target = self._target(source, schema, relation_field) if relation_field else None
        if relation_field is None or target is None:
            raise StepStateError(f"Relation {relation_ref['name']} leads to no collection now")
        relation = _Relation(source, schema, relation_field, target)
        self.save(
            {
                **entry,
                "executionParams": relation.ref,
                "executionResult": self._result(relation, record_id),
            }
        )
        return self.success()

    # --- documents ------------------------------------------------------------------------------

    def _base(self, source: RecordRef) -> StepExecutionData:
        return {
            "type": self.step.definition.type.value,
            "stepIndex": self.step.step_index,
            "selectedRecordRef": record_ref_document(source),
        }

    def _pending(self, proposal: _Proposal, *, degraded: bool) -> dict[str, Any]:
        relation = proposal.relation
        pending: dict[str, Any] = {
            "availableFields": [
                {"name": f.name, "displayName": f.display_name}
                for f in relation.schema.followable_fields
            ],
            "suggestedField": relation.ref,
            "availableRecordIds": proposal.candidates,
        }
        if proposal.suggestion is not None:
            pending["suggestedRecord"] = proposal.suggestion
        elif self._ai_mode and not degraded:
            pending["suggestNoRecord"] = True  # the AI looked and found nothing fitting
        return pending

    def _result(self, relation: _Relation, record_id: list[Any]) -> dict[str, Any]:
        return {
            "relation": relation.ref,
            "record": record_ref_document(
                RecordRef(relation.target, list(record_id), self.step.step_index)
            ),
        }

    def _log_fields(self) -> dict[str, Any]:
        return {"run_id": self.step.run_id, "step_index": self.step.step_index}


def _candidate(record_id: list[Any], label: Any) -> dict[str, Any]:
    return {
        "recordId": list(record_id),
        "referenceFieldValue": None if label is None else str(label),
    }


def _cut(value: Any) -> Any:
    """A value as the ranking prompt shows it: long text cut to keep the list readable."""
    text = value if isinstance(value, str) else compact_json(value)
    if len(text) > RANKING_VALUE_CHARS:
        return text[:RANKING_VALUE_CHARS] + TRUNCATED
    return value

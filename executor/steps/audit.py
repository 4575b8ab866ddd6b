"""Agent calls wrapped in their audit-trail entries (protocol §9).

No step touches customer data without its entry: the pending entry is created first (its failure
stops everything), the operation runs, then the entry is marked completed or failed in the
background.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from executor.domain.collections import ActionSchema, CollectionSchema, FieldSchema
from executor.domain.ids import RecordId, join_record_id
from executor.domain.records import (
    ActionForm,
    ActivityLogEntry,
    AuditAction,
    RecordData,
    RelatedRecord,
)
from executor.domain.runs import StepUser
from executor.ports import ActivityLogPort, AgentPort

T = TypeVar("T")


class AuditedAgent:
    """The agent as one step sees it: calls made for the step's user, audited with its token."""

    def __init__(
        self,
        agent: AgentPort,
        activity_log: ActivityLogPort,
        *,
        user: StepUser,
        server_token: str,
    ) -> None:
        self._agent = agent
        self._log = activity_log
        self._user = user
        self._token = server_token

    # --- audited --------------------------------------------------------------------------------

    def read_record(
        self, collection: CollectionSchema, record_id: RecordId, field_names: Sequence[str] | None
    ) -> RecordData:
        entry = self._entry(AuditAction.INDEX, "read", collection, [record_id])
        return self._audited(
            entry, lambda: self._agent.get_record(self._user, collection, record_id, field_names)
        )

    def list_related(
        self,
        collection: CollectionSchema,
        record_id: RecordId,
        relation: FieldSchema,
        related: CollectionSchema,
        *,
        limit: int,
        filters: Any = None,
    ) -> list[RecordData]:
        entry = self._relation_entry(collection, record_id, relation)
        return self._audited(
            entry,
            lambda: self._agent.list_related(
                self._user,
                collection,
                record_id,
                relation.name,
                related,
                limit=limit,
                filters=filters,
            ),
        )

    def get_related(
        self,
        collection: CollectionSchema,
        record_id: RecordId,
        relation: FieldSchema,
        label_field: str,
    ) -> RelatedRecord | None:
        entry = self._relation_entry(collection, record_id, relation)
        return self._audited(
            entry,
            lambda: self._agent.get_related(
                self._user, collection, record_id, relation.name, label_field
            ),
        )

    def update_record(
        self,
        collection: CollectionSchema,
        record_id: RecordId,
        values: Mapping[str, Any],
        *,
        before: Callable[[], None],
    ) -> RecordData:
        """``before`` runs once the entry exists and before the write (the write-ahead mark)."""
        entry = self._entry(AuditAction.UPDATE, "write", collection, [record_id], label="updated")
        return self._audited(
            entry,
            lambda: self._agent.update_record(self._user, collection, record_id, values),
            before=before,
        )

    def execute_action(
        self,
        collection: CollectionSchema,
        action: ActionSchema,
        record_ids: Sequence[RecordId],
        operation: Callable[[], T],
        *,
        before: Callable[[], None],
    ) -> T:
        """Audit ``operation`` (the execution, with its form work and any approval request)."""
        entry = self._entry(
            AuditAction.ACTION,
            "write",
            collection,
            record_ids,
            label=f'triggered the action "{action.name}"',
        )
        return self._audited(entry, operation, before=before)

    def invoke_mcp_tool(
        self,
        collection_id: str,
        record_id: RecordId,
        mcp_server_id: str,
        operation: Callable[[], T],
        *,
        before: Callable[[], None],
    ) -> T:
        """Audit an MCP tool invocation: labelled with the server id, filed under the run's
        collection and base record (the tool may touch anything; that is what it is about)."""
        entry = ActivityLogEntry(
            action=AuditAction.ACTION,
            type="write",
            rendering_id=self._user.rendering_id,
            collection_id=collection_id,
            records=(join_record_id(record_id),),
            label=mcp_server_id,
        )
        return self._audited(entry, operation, before=before)

    # --- not audited (protocol §9: forms, hooks and polymorphic probes) --------------------------

    def get_polymorphic_type(
        self, collection: CollectionSchema, record_id: RecordId, relation: str
    ) -> str | None:
        return self._agent.get_polymorphic_type(self._user, collection, record_id, relation)

    def load_action_form(
        self, action: ActionSchema, collection_name: str, ids: Sequence[str]
    ) -> ActionForm | None:
        return self._agent.load_action_form(self._user, action, collection_name, ids)

    def change_action_form(
        self,
        action: ActionSchema,
        collection_name: str,
        ids: Sequence[str],
        changed_field: str,
        fields: Sequence[Mapping[str, Any]],
    ) -> ActionForm:
        return self._agent.change_action_form(
            self._user, action, collection_name, ids, changed_field, fields
        )

    def execute_action_now(
        self,
        action: ActionSchema,
        collection_name: str,
        ids: Sequence[str],
        values: Mapping[str, Any],
    ) -> Any:
        """The bare execution call, for use inside :meth:`execute_action`'s operation."""
        return self._agent.execute_action(self._user, action, collection_name, ids, values)

    # --- machinery ------------------------------------------------------------------------------

    def _relation_entry(
        self, collection: CollectionSchema, record_id: RecordId, relation: FieldSchema
    ) -> ActivityLogEntry:
        return self._entry(
            AuditAction.LIST_RELATED_DATA,
            "read",
            collection,
            [record_id],
            label=f'list relation "{relation.display_name or relation.name}"',
        )

    def _entry(
        self,
        action: AuditAction,
        kind: str,
        collection: CollectionSchema,
        record_ids: Sequence[RecordId],
        *,
        label: str | None = None,
    ) -> ActivityLogEntry:
        return ActivityLogEntry(
            action=action,
            type=kind,
            rendering_id=self._user.rendering_id,
            collection_id=collection.collection_id,
            records=tuple(join_record_id(r) for r in record_ids),
            label=label,
        )

    def _audited(
        self,
        entry: ActivityLogEntry,
        operation: Callable[[], T],
        *,
        before: Callable[[], None] | None = None,
    ) -> T:
        handle = self._log.create(self._token, entry)  # ActivityLogCreation: nothing else happens
        try:
            if before is not None:
                before()
            result = operation()
        except BaseException:
            self._log.mark(self._token, handle, succeeded=False)
            raise
        self._log.mark(self._token, handle, succeeded=True)
        return result

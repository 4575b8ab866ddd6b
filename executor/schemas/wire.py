"""Run-store entries in the wire form of ``GET /runs/{runId}`` (protocol §2.10)."""

from __future__ import annotations

from typing import Any

from executor.domain.executions import StepExecutionData
from executor.domain.ids import join_record_id
from executor.domain.steps import StepType


def step_execution_to_wire(entry: StepExecutionData) -> dict[str, Any]:
    """The same document with the record ids the protocol lists pipe-joined.

    ``entry`` is left as it is; the result shares the parts it does not change with it (a deep
    copy of every entry was a visible share of ``GET /runs/<id>``).
    """
    wire: dict[str, Any] = dict(entry)
    _join_at(wire, "selectedRecordRef")
    if wire.get("type") == StepType.LOAD_RELATED_RECORD.value:
        pending = wire.get("pendingData")
        if isinstance(pending, dict):
            pending = wire["pendingData"] = dict(pending)
            candidates = pending.get("availableRecordIds")
            if isinstance(candidates, list):
                pending["availableRecordIds"] = [_joined(c) for c in candidates]
            _join_at(pending, "suggestedRecord")
        result = wire.get("executionResult")
        if isinstance(result, dict):
            result = wire["executionResult"] = dict(result)
            _join_at(result, "record")
    return wire


def _join_at(parent: dict[str, Any], key: str) -> None:
    if key in parent:
        parent[key] = _joined(parent[key])


def _joined(holder: Any) -> Any:
    """A record reference with its id pipe-joined (a new dict), or ``holder`` unchanged."""
    if isinstance(holder, dict) and isinstance(holder.get("recordId"), list):
        return {**holder, "recordId": join_record_id(holder["recordId"])}
    return holder

"""Run-store entries in the wire form of ``GET /runs/{runId}`` (protocol §2.10)."""

from __future__ import annotations

import copy
from typing import Any

from executor.domain.executions import StepExecutionData
from executor.domain.ids import join_record_id
from executor.domain.steps import StepType


def step_execution_to_wire(entry: StepExecutionData) -> dict[str, Any]:
    """The same document with the record ids the protocol lists pipe-joined."""
    wire = copy.deepcopy(entry)
    _join_at(wire.get("selectedRecordRef"))
    if wire.get("type") == StepType.LOAD_RELATED_RECORD.value:
        pending = wire.get("pendingData") or {}
        for candidate in pending.get("availableRecordIds") or []:
            _join_at(candidate)
        _join_at(pending.get("suggestedRecord"))
        _join_at((wire.get("executionResult") or {}).get("record"))
    return wire


def _join_at(holder: Any) -> None:
    if isinstance(holder, dict) and isinstance(holder.get("recordId"), list):
        holder["recordId"] = join_record_id(holder["recordId"])

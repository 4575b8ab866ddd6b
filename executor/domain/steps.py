"""Step types, execution modes and normalized step definitions (protocol §2.2, §2.3)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class StepType(enum.StrEnum):
    CONDITION = "condition"
    READ_RECORD = "read-record"
    UPDATE_RECORD = "update-record"
    TRIGGER_ACTION = "trigger-action"
    LOAD_RELATED_RECORD = "load-related-record"
    MCP = "mcp"
    GUIDANCE = "guidance"

    @property
    def outcome_type(self) -> OutcomeType:
        if self is StepType.CONDITION:
            return OutcomeType.CONDITION
        if self is StepType.MCP:
            return OutcomeType.MCP
        if self is StepType.GUIDANCE:
            return OutcomeType.GUIDANCE
        return OutcomeType.RECORD


class OutcomeType(enum.StrEnum):
    CONDITION = "condition"
    RECORD = "record"
    MCP = "mcp"
    GUIDANCE = "guidance"


class ExecutionType(enum.StrEnum):
    MANUAL = "manual"
    AUTOMATED_WITH_CONFIRMATION = "automated-with-confirmation"
    FULLY_AUTOMATED = "fully-automated"


@dataclass(frozen=True)
class ModeRule:
    """Which execution modes a step type accepts, and what happens to others."""

    allowed: frozenset[ExecutionType]
    default: ExecutionType
    coerce_unknown: bool  # False: an unknown mode is rejected rather than coerced to the default


_M, _AWC, _FA = (
    ExecutionType.MANUAL,
    ExecutionType.AUTOMATED_WITH_CONFIRMATION,
    ExecutionType.FULLY_AUTOMATED,
)

# Types that accept manual never coerce: coercion would silently turn AI assistance back on.
MODE_RULES: dict[StepType, ModeRule] = {
    StepType.CONDITION: ModeRule(frozenset({_M, _FA}), _FA, coerce_unknown=True),
    StepType.READ_RECORD: ModeRule(frozenset({_FA}), _FA, coerce_unknown=True),
    StepType.UPDATE_RECORD: ModeRule(frozenset({_AWC, _FA}), _AWC, coerce_unknown=True),
    StepType.TRIGGER_ACTION: ModeRule(frozenset({_M, _AWC, _FA}), _AWC, coerce_unknown=False),
    StepType.LOAD_RELATED_RECORD: ModeRule(frozenset({_M, _AWC, _FA}), _AWC, coerce_unknown=False),
    StepType.MCP: ModeRule(frozenset({_AWC, _FA}), _AWC, coerce_unknown=True),
    StepType.GUIDANCE: ModeRule(frozenset({_M, _AWC, _FA}), _M, coerce_unknown=False),
}

WORKFLOW_START = "workflow-start"
"""``selectedRecordStepId`` sentinel meaning the base (trigger) record."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks a pre-recorded ``value`` that is absent (``None`` is a legitimate value to write)."""


@dataclass(frozen=True)
class PreRecordedArgs:
    """Build-time decisions recorded in the designer; they replace AI choices."""

    selected_record_step_id: str | None = None
    selected_record_step_index: int | None = None
    field_names: tuple[str, ...] | None = None
    field_name: str | None = None
    value: Any = UNSET
    action_name: str | None = None
    relation_name: str | None = None
    filters: Any = None


@dataclass(frozen=True)
class StepDefinition:
    """A step definition in the executor's normalized form."""

    type: StepType
    execution_type: ExecutionType
    prompt: str | None = None
    title: str | None = None
    ai_config_name: str | None = None
    options: tuple[str, ...] = field(default=())  # condition
    pre_recorded_args: PreRecordedArgs | None = None  # record steps
    mcp_server_id: str | None = None  # mcp

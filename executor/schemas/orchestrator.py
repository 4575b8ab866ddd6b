"""The orchestrator's wire formats: hydrated runs in, update-step bodies out (protocol §3.4, §3.5).

Mapping a hydrated run is pure: it either returns a dispatch, returns ``None`` (no available step),
or raises a domain error that makes the run *malformed* (:func:`malformed_run`), or a
:class:`~executor.errors.StepDefinitionShapeError` that the protocol does not treat as malformed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from executor.domain.ids import MAX_NUMERIC_ID, split_record_id
from executor.domain.outcomes import StepOutcome, StepStatus
from executor.domain.runs import (
    AvailableStepExecution,
    Dispatch,
    MalformedRun,
    RecordRef,
    Step,
    StepUser,
    TriggerType,
)
from executor.domain.steps import (
    MODE_RULES,
    UNSET,
    ExecutionType,
    PreRecordedArgs,
    StepDefinition,
    StepType,
)
from executor.errors import (
    UNKNOWN_ERROR_MESSAGE,
    DomainValidation,
    ExecutorError,
    InvalidStepDefinition,
    StepDefinitionShapeError,
    UnsupportedStepType,
)

_TASK_TYPES = {
    "get-data": StepType.READ_RECORD,
    "update-data": StepType.UPDATE_RECORD,
    "trigger-action": StepType.TRIGGER_ACTION,
    "load-related-record": StepType.LOAD_RELATED_RECORD,
    "mcp-server": StepType.MCP,
    "guideline": StepType.GUIDANCE,
}
_UNSUPPORTED_TYPES = frozenset({"end", "escalation", "start-sub-workflow", "close-sub-workflow"})
_RECORD_STEP_TYPES = frozenset(
    {
        StepType.READ_RECORD,
        StepType.UPDATE_RECORD,
        StepType.TRIGGER_ACTION,
        StepType.LOAD_RELATED_RECORD,
    }
)
_USER_STRING_FIELDS = ("firstName", "lastName", "team", "role", "permissionLevel")


# --- hydrated run -> dispatch -------------------------------------------------------------------


def map_run(envelope: Any) -> Dispatch | None:
    """Map one hydrated run to the dispatch of its available step (``None``: nothing to do)."""
    try:
        return _map_run(envelope)
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        # Values of a type or size no rule foresaw (an object where a name belongs, an integer
        # beyond any float): the run is malformed, whatever Python error they caused.
        raise DomainValidation(f"Run could not be mapped: {type(error).__name__}") from error


def _map_run(envelope: Any) -> Dispatch | None:
    if not isinstance(envelope, Mapping):
        raise DomainValidation(f"A run must be a JSON object, got {type(envelope).__name__}")
    run_id = run_id_of(envelope)
    if run_id is None:
        raise DomainValidation("Run has no usable id")

    profile = envelope.get("userProfile")
    if not isinstance(profile, Mapping):
        raise InvalidStepDefinition(f"Run {run_id} is missing required field userProfile")
    token = profile.get("serverToken")
    if not isinstance(token, str) or not token:
        raise InvalidStepDefinition(f"Run {run_id} has no userProfile.serverToken")
    collection_name = envelope.get("collectionName")
    collection_id = envelope.get("collectionId")
    selected_record_id = envelope.get("selectedRecordId")
    for name, value in (
        ("collectionName", collection_name),
        ("collectionId", collection_id),
        ("selectedRecordId", selected_record_id),
    ):
        if value is None or value == "":
            raise InvalidStepDefinition(f"Run {run_id} has an empty {name}")

    history = envelope.get("workflowHistory")
    if history is None:
        history = []
    if not isinstance(history, list) or not all(isinstance(e, Mapping) for e in history):
        raise DomainValidation(f"Run {run_id} has a workflowHistory that is not a list of objects")
    if not history or history[-1].get("done") is True:
        return None
    available = history[-1]
    step_index = available.get("stepIndex")
    if not _is_int(step_index) or step_index < 0:
        raise DomainValidation(f"Run {run_id}: the available step has no valid stepIndex")

    definition = map_step_definition(available.get("stepDefinition"))
    previous_steps = tuple(
        step
        for entry in history
        if _is_previous(entry, step_index)
        for step in _map_previous_step(entry)
    )

    rendering_id = profile.get("renderingId")
    if not _is_number(rendering_id) or (
        isinstance(rendering_id, float) and not math.isfinite(rendering_id)
    ):
        raise InvalidStepDefinition(f"Run {run_id}: userProfile.renderingId is not a finite number")

    step_id = available.get("stepName")
    if not isinstance(step_id, str) or not step_id:
        raise DomainValidation(f"Run {run_id}: the available step has no stepName")
    trigger_type = envelope.get("triggerType") or TriggerType.MANUAL.value
    if not isinstance(trigger_type, str) or trigger_type not in {t.value for t in TriggerType}:
        raise DomainValidation(f"Run {run_id}: unknown triggerType {trigger_type!r}")
    if not isinstance(collection_name, str) or not isinstance(selected_record_id, str | int):
        raise DomainValidation(f"Run {run_id}: collectionName or selectedRecordId has a wrong type")
    step = AvailableStepExecution(
        run_id=run_id,
        step_id=step_id,
        step_index=step_index,
        collection_id=str(collection_id),
        trigger_type=TriggerType(trigger_type),
        base_record_ref=RecordRef(
            collection_name=collection_name,
            record_id=split_record_id(str(selected_record_id)),
            step_index=0,
        ),
        definition=definition,
        previous_steps=previous_steps,
        user=map_user(profile, run_id),
    )
    return Dispatch(step=step, forest_server_token=token)


def run_id_of(envelope: Mapping[str, Any]) -> str | None:
    """The run's id as the executor keys it (``String(id)``), when it has a usable one."""
    raw = envelope.get("id")
    if _is_int(raw) and raw >= 0:
        return str(raw)
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():  # not "²" nor "٣"
        return raw
    return None


def malformed_run(envelope: Mapping[str, Any], error: ExecutorError) -> MalformedRun:
    """Describe a run that failed mapping; its step is the *last* history entry, done or not."""
    history = envelope.get("workflowHistory")
    last = history[-1] if isinstance(history, list) and history else None
    step_id = last.get("stepName") if isinstance(last, Mapping) else None
    step_index = last.get("stepIndex") if isinstance(last, Mapping) else None
    return MalformedRun(
        run_id=run_id_of(envelope) or "",
        step_id=step_id if isinstance(step_id, str) and step_id else None,
        step_index=step_index if _is_int(step_index) and step_index >= 0 else None,
        user_message=error.user_message,
        technical_message=str(error),
    )


def map_user(profile: Mapping[str, Any], run_id: str) -> StepUser:
    user_id = profile.get("id")
    email = profile.get("email")
    rendering_id = profile.get("renderingId")
    tags = profile.get("tags") or {}
    if not (_is_int(user_id) or (isinstance(user_id, float) and user_id.is_integer())) or not (
        abs(user_id) <= MAX_NUMERIC_ID
    ):
        raise DomainValidation(f"Run {run_id}: userProfile.id is not an integer of the id range")
    if not isinstance(email, str):
        raise DomainValidation(f"Run {run_id}: userProfile.email is not a string")
    if not _is_int(rendering_id) or not 0 <= rendering_id <= MAX_NUMERIC_ID:
        raise DomainValidation(
            f"Run {run_id}: userProfile.renderingId is not an integer of the id range (>= 0)"
        )
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise DomainValidation(f"Run {run_id}: userProfile.tags is not a string map")
    strings: dict[str, str] = {}
    for name in _USER_STRING_FIELDS:
        value = profile.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise DomainValidation(f"Run {run_id}: userProfile.{name} is not a string")
        strings[name] = value
    return StepUser(
        id=int(user_id),
        email=email,
        first_name=strings["firstName"],
        last_name=strings["lastName"],
        team=strings["team"],
        rendering_id=rendering_id,
        role=strings["role"],
        permission_level=strings["permissionLevel"],
        tags=dict(tags),
    )


def _is_previous(entry: Mapping[str, Any], available_index: int) -> bool:
    # Filtering happens before mapping: dead-branch entries are never mapped.
    index = entry.get("stepIndex")
    return (
        entry.get("done") is True
        and not entry.get("revised")
        and not entry.get("cancelled")
        and _is_int(index)
        and index < available_index
    )


def _map_previous_step(entry: Mapping[str, Any]) -> list[Step]:
    try:
        definition = map_step_definition(entry.get("stepDefinition"))
    except UnsupportedStepType:
        return []  # end / escalation / sub-workflow entries are silently skipped
    step_id = entry.get("stepName")
    if not isinstance(step_id, str) or not step_id:
        raise DomainValidation("A previous step has no stepName")
    original = entry.get("originalStepIndex")
    outcome = _outcome_from_context(
        definition.type, step_id, entry["stepIndex"], entry.get("context")
    )
    return [
        Step(
            definition=definition,
            outcome=outcome,
            original_step_index=original if _is_int(original) else None,
        )
    ]


def _outcome_from_context(
    step_type: StepType, step_id: str, step_index: int, context: Any
) -> StepOutcome:
    """Rebuild a previous step's outcome from its history context, whitelisted keys only."""
    context = context if isinstance(context, Mapping) else {}
    raw_status = context.get("status")
    if raw_status == "error":
        status = StepStatus.ERROR
    elif raw_status == "awaiting-input" and step_type is not StepType.GUIDANCE:
        status = StepStatus.AWAITING_INPUT
    else:
        status = StepStatus.SUCCESS
    error = context.get("error")
    option = context.get("selectedOption")
    return StepOutcome(
        type=step_type.outcome_type,
        step_id=step_id,
        step_index=step_index,
        status=status,
        error=error if isinstance(error, str) else None,
        selected_option=option
        if step_type is StepType.CONDITION and isinstance(option, str)
        else None,
    )


# --- server step definition -> normalized definition --------------------------------------------


def map_step_definition(raw: Any) -> StepDefinition:
    """Normalize a server step definition (protocol §3.4.2) and apply the mode rules (§2.2)."""
    if not isinstance(raw, Mapping):
        raise InvalidStepDefinition("A step has no stepDefinition object")
    server_type = raw.get("type")
    options: tuple[str, ...] = ()
    if not isinstance(server_type, str):
        raise InvalidStepDefinition(f"Step type {type(server_type).__name__} is not a name")
    if server_type == "task":
        task_type = raw.get("taskType")
        if not isinstance(task_type, str) or task_type not in _TASK_TYPES:
            raise InvalidStepDefinition(f"Unknown task type {task_type!r}")
        step_type = _TASK_TYPES[task_type]
    elif server_type == "condition":
        step_type = StepType.CONDITION
        options = _condition_options(raw.get("outgoing"))
        if len(options) < 2:
            raise InvalidStepDefinition(
                f"Condition step requires at least 2 options, got {len(options)}"
            )
    elif server_type in _UNSUPPORTED_TYPES:
        raise UnsupportedStepType(f"Step type {server_type!r} is not executed by executors")
    else:
        raise InvalidStepDefinition(f"Unknown step type {server_type!r}")

    mcp_server_id = None
    if step_type is StepType.MCP:
        mcp_server_id = raw.get("mcpServerId")
        if not isinstance(mcp_server_id, str) or not mcp_server_id:
            raise StepDefinitionShapeError("An mcp-server task has no mcpServerId")
    return StepDefinition(
        type=step_type,
        execution_type=_execution_type(step_type, raw.get("executionType")),
        prompt=_optional_string(raw, "prompt"),
        title=_optional_string(raw, "title"),
        options=options,
        pre_recorded_args=_pre_recorded_args(step_type, raw.get("preRecordedArgs")),
        mcp_server_id=mcp_server_id,
    )


def _condition_options(outgoing: Any) -> tuple[str, ...]:
    if not isinstance(outgoing, list):
        return ()
    options = []
    for branch in outgoing:
        if not isinstance(branch, Mapping):
            continue
        label = branch.get("answer")
        if label is None:
            label = branch.get("buttonText")
        if isinstance(label, str) and label:
            options.append(label)
    return tuple(options)


def _execution_type(step_type: StepType, raw: Any) -> ExecutionType:
    rule = MODE_RULES[step_type]
    if raw is None:
        return rule.default
    try:
        mode = ExecutionType(raw)
    except ValueError:
        mode = None
    if mode in rule.allowed:
        return mode
    if rule.coerce_unknown:
        return rule.default
    raise StepDefinitionShapeError(f"Execution type {raw!r} is not allowed for {step_type} steps")


def _optional_string(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise StepDefinitionShapeError(f"Step definition field {key!r} is not a string")
    return value


_PRE_RECORDED_KEYS: dict[StepType, frozenset[str]] = {
    StepType.READ_RECORD: frozenset(
        {"selectedRecordStepId", "selectedRecordStepIndex", "fieldNames"}
    ),
    StepType.UPDATE_RECORD: frozenset(
        {"selectedRecordStepId", "selectedRecordStepIndex", "fieldName", "value"}
    ),
    StepType.TRIGGER_ACTION: frozenset({"selectedRecordStepId", "actionName"}),
    StepType.LOAD_RELATED_RECORD: frozenset({"selectedRecordStepId", "relationName", "filters"}),
}


def _pre_recorded_args(step_type: StepType, raw: Any) -> PreRecordedArgs | None:
    if step_type not in _RECORD_STEP_TYPES or raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise StepDefinitionShapeError("preRecordedArgs is not an object")
    known = {k: v for k, v in raw.items() if k in _PRE_RECORDED_KEYS[step_type]}

    def text(key: str) -> str | None:
        value = known.get(key)
        if value is not None and not isinstance(value, str):
            raise StepDefinitionShapeError(f"preRecordedArgs.{key} is not a string")
        return value

    index = known.get("selectedRecordStepIndex")
    if index is not None and (not _is_int(index) or index < 0):
        raise StepDefinitionShapeError("preRecordedArgs.selectedRecordStepIndex is not an integer")
    field_names = known.get("fieldNames")
    if field_names is not None and (
        not isinstance(field_names, list) or not all(isinstance(n, str) for n in field_names)
    ):
        raise StepDefinitionShapeError("preRecordedArgs.fieldNames is not a list of strings")
    return PreRecordedArgs(
        selected_record_step_id=text("selectedRecordStepId"),
        selected_record_step_index=index,
        field_names=tuple(field_names) if field_names is not None else None,
        field_name=text("fieldName"),
        value=known.get("value", UNSET),
        action_name=text("actionName"),
        relation_name=text("relationName"),
        filters=known.get("filters"),
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- outcome -> update-step body ----------------------------------------------------------------


def update_step_body(run_id: str, outcome: StepOutcome) -> dict[str, Any]:
    """The ``POST update-step`` body for an outcome (protocol §3.5)."""
    context: dict[str, Any] = {"status": outcome.status.value}
    if outcome.error:
        context["error"] = outcome.error
    if outcome.selected_option is not None:
        context["selectedOption"] = outcome.selected_option
    if outcome.approval_request_id is not None:
        context["approvalRequest"] = {"id": outcome.approval_request_id}
    if outcome.awaiting_input_reason is not None:
        context["awaitingInputReason"] = outcome.awaiting_input_reason
    execution_status: dict[str, Any] = {"type": outcome.status.value}
    if outcome.status is StepStatus.ERROR:
        execution_status["message"] = outcome.error or UNKNOWN_ERROR_MESSAGE
    return {
        "runId": int(run_id),
        "stepUpdate": {
            "stepIndex": outcome.step_index,
            "attributes": {
                "done": outcome.status is not StepStatus.AWAITING_INPUT,
                "context": context,
            },
        },
        "executionStatus": execution_status,
    }

"""Hydrated run -> dispatch, malformed runs, update-step bodies (protocol §2.2, §3.4, §3.5)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from executor.domain.outcomes import NEEDS_OAUTH_REAUTH, StepOutcome, StepStatus
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
    UNSET,
    ExecutionType,
    OutcomeType,
    PreRecordedArgs,
    StepDefinition,
    StepType,
)
from executor.errors import (
    DomainValidation,
    ExecutorError,
    InvalidStepDefinition,
    StepDefinitionShapeError,
    UnsupportedStepType,
)
from executor.schemas.orchestrator import malformed_run, map_run, update_step_body

MANUAL = ExecutionType.MANUAL
AWC = ExecutionType.AUTOMATED_WITH_CONFIRMATION
FULL = ExecutionType.FULLY_AUTOMATED

SERVER_TOKEN = "<opaque Forest server token>"

# The envelope of protocol §3.4.1, verbatim.
EXAMPLE_ENVELOPE: dict[str, Any] = {
    "id": 42,
    "workflowId": "wf-1",
    "collectionId": "11",
    "collectionName": "customers",
    "selectedRecordId": "123",
    "bpmnVersion": "1.0",
    "runState": "started",
    "triggerType": "manual",
    "createdAt": "2026-01-01T10:00:00.000Z",
    "updatedAt": "2026-01-01T10:05:00.000Z",
    "userId": 7,
    "renderingId": 3,
    "lockedAt": None,
    "userProfile": {
        "id": 7,
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": None,
        "team": "Operations",
        "renderingId": 3,
        "role": "Admin",
        "permissionLevel": "admin",
        "tags": {"region": "EU"},
        "serverToken": SERVER_TOKEN,
    },
    "workflowHistory": [
        {
            "stepName": "check-vip",
            "stepIndex": 0,
            "done": True,
            "context": {"status": "success", "selectedOption": "Yes"},
            "stepDefinition": {
                "type": "condition",
                "title": "VIP?",
                "prompt": "Is the customer a VIP?",
                "executionType": "fully-automated",
                "automaticCompletion": False,
                "outgoing": [
                    {"stepId": "a", "buttonText": None, "answer": "Yes"},
                    {"stepId": "b", "buttonText": None, "answer": "No"},
                ],
            },
        },
        {
            "stepName": "update-tier",
            "stepIndex": 1,
            "done": False,
            "stepDefinition": {
                "type": "task",
                "taskType": "update-data",
                "title": "Set tier",
                "prompt": "Set the tier to gold",
                "executionType": "automated-with-confirmation",
                "automaticCompletion": False,
                "outgoing": [{"stepId": "end", "buttonText": None}],
                "preRecordedArgs": {"selectedRecordStepId": "workflow-start", "fieldName": "tier"},
            },
        },
    ],
}


def example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE_ENVELOPE)


def task(task_type: str, **fields: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "type": "task",
        "taskType": task_type,
        "title": "A task",
        "prompt": "Do it",
        "automaticCompletion": False,
        "outgoing": [{"stepId": "next", "buttonText": None}],
    }
    definition.update(fields)
    return definition


def condition(*labels: tuple[str | None, str | None], **fields: Any) -> dict[str, Any]:
    """A server condition; each label is ``(answer, buttonText)``."""
    definition: dict[str, Any] = {
        "type": "condition",
        "title": "Decide",
        "prompt": "Which way?",
        "automaticCompletion": False,
        "outgoing": [
            {"stepId": f"branch-{i}", "buttonText": button, "answer": answer}
            for i, (answer, button) in enumerate(labels)
        ],
    }
    definition.update(fields)
    return definition


def yes_no(**fields: Any) -> dict[str, Any]:
    return condition(("Yes", None), ("No", None), **fields)


def entry(
    index: int, definition: dict[str, Any], *, done: bool = True, **extra: Any
) -> dict[str, Any]:
    return {
        "stepName": f"step-{index}",
        "stepIndex": index,
        "done": done,
        "stepDefinition": definition,
        **extra,
    }


def run_with(history: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    envelope = example()
    envelope["workflowHistory"] = history
    envelope.update(overrides)
    return envelope


def available_definition(definition: dict[str, Any]) -> StepDefinition:
    """The normalized definition of a run whose only (available) step is ``definition``."""
    dispatch = map_run(run_with([entry(0, definition, done=False)]))
    assert dispatch is not None
    return dispatch.step.definition


def previous_steps(*entries: dict[str, Any], available_index: int = 9) -> tuple[Step, ...]:
    history = [*entries, entry(available_index, task("guideline"), done=False)]
    dispatch = map_run(run_with(history))
    assert dispatch is not None
    return dispatch.step.previous_steps


def raises(error: type[ExecutorError], envelope: dict[str, Any]) -> ExecutorError:
    with pytest.raises(error) as caught:
        map_run(envelope)
    assert type(caught.value) is error  # not a subclass standing in for another kind
    return caught.value


# --- the example of §3.4.4 ----------------------------------------------------------------------


def test_example_envelope_maps_to_the_example_dispatch() -> None:
    dispatch = map_run(example())

    assert dispatch == Dispatch(
        step=AvailableStepExecution(
            run_id="42",
            step_id="update-tier",
            step_index=1,
            collection_id="11",
            trigger_type=TriggerType.MANUAL,
            base_record_ref=RecordRef(collection_name="customers", record_id=["123"], step_index=0),
            definition=StepDefinition(
                type=StepType.UPDATE_RECORD,
                execution_type=AWC,
                prompt="Set the tier to gold",
                title="Set tier",
                pre_recorded_args=PreRecordedArgs(
                    selected_record_step_id="workflow-start", field_name="tier"
                ),
            ),
            previous_steps=(
                Step(
                    definition=StepDefinition(
                        type=StepType.CONDITION,
                        execution_type=FULL,
                        prompt="Is the customer a VIP?",
                        title="VIP?",
                        options=("Yes", "No"),
                    ),
                    outcome=StepOutcome(
                        type=OutcomeType.CONDITION,
                        step_id="check-vip",
                        step_index=0,
                        status=StepStatus.SUCCESS,
                        selected_option="Yes",
                    ),
                ),
            ),
            user=StepUser(
                id=7,
                email="ada@example.com",
                first_name="Ada",
                last_name="",
                team="Operations",
                rendering_id=3,
                role="Admin",
                permission_level="admin",
                tags={"region": "EU"},
            ),
        ),
        forest_server_token=SERVER_TOKEN,
    )


def test_example_dispatch_field_by_field() -> None:
    dispatch = map_run(example())
    assert dispatch is not None
    step = dispatch.step

    assert dispatch.run_id == step.run_id == "42"
    assert step.step_id == "update-tier"
    assert step.step_index == 1
    assert step.collection_id == "11"
    assert step.trigger_type is TriggerType.MANUAL
    assert step.base_record_ref == RecordRef("customers", ["123"], 0)

    definition = step.definition
    assert definition.type is StepType.UPDATE_RECORD
    assert definition.execution_type is AWC
    assert definition.title == "Set tier"
    assert definition.prompt == "Set the tier to gold"
    assert definition.ai_config_name is None
    assert definition.options == ()
    assert definition.mcp_server_id is None
    args = definition.pre_recorded_args
    assert args is not None
    assert args.selected_record_step_id == "workflow-start"
    assert args.field_name == "tier"
    assert args.selected_record_step_index is None
    assert args.field_names is None
    assert args.value is UNSET  # absent, not null
    assert args.action_name is None
    assert args.relation_name is None
    assert args.filters is None

    (previous,) = step.previous_steps
    assert previous.definition.type is StepType.CONDITION
    assert previous.definition.execution_type is FULL
    assert previous.definition.title == "VIP?"
    assert previous.definition.prompt == "Is the customer a VIP?"
    assert previous.definition.options == ("Yes", "No")
    assert previous.definition.pre_recorded_args is None
    assert previous.outcome.type is OutcomeType.CONDITION
    assert previous.outcome.step_id == "check-vip"
    assert previous.outcome.step_index == 0
    assert previous.outcome.status is StepStatus.SUCCESS
    assert previous.outcome.selected_option == "Yes"
    assert previous.outcome.error is None
    assert previous.original_step_index is None

    user = step.user
    assert (user.id, user.email, user.first_name, user.last_name) == (
        7,
        "ada@example.com",
        "Ada",
        "",
    )
    assert (user.team, user.rendering_id, user.role, user.permission_level) == (
        "Operations",
        3,
        "Admin",
        "admin",
    )
    assert user.tags == {"region": "EU"}
    assert dispatch.forest_server_token == SERVER_TOKEN


def test_mapping_does_not_modify_the_envelope() -> None:
    envelope = example()

    map_run(envelope)

    assert envelope == EXAMPLE_ENVELOPE


def test_server_token_is_kept_out_of_the_step_and_its_repr() -> None:
    dispatch = map_run(example())

    assert dispatch is not None
    assert SERVER_TOKEN not in repr(dispatch)
    assert SERVER_TOKEN not in repr(dispatch.step)
    assert not hasattr(dispatch.step.user, "server_token")


# --- §3.4.5 validation rules, in order ----------------------------------------------------------


@pytest.mark.parametrize("profile", [None, "ada", ["ada"]])
def test_rule_1_missing_user_profile(profile: Any) -> None:
    envelope = example()
    if profile is None:
        del envelope["userProfile"]
    else:
        envelope["userProfile"] = profile

    error = raises(InvalidStepDefinition, envelope)

    assert "Run 42 is missing required field userProfile" in str(error)
    assert error.user_message == (
        "The workflow step configuration is invalid. Please check the workflow designer."
    )


def test_rule_1_comes_before_every_other_rule() -> None:
    envelope = run_with([], collectionName="", selectedRecordId="")
    del envelope["userProfile"]

    assert "userProfile" in str(raises(InvalidStepDefinition, envelope))


@pytest.mark.parametrize("token", [None, "", 123, ["t"]])
def test_rule_2_server_token_must_be_a_non_empty_string(token: Any) -> None:
    envelope = example()
    envelope["userProfile"]["serverToken"] = token
    envelope["collectionName"] = ""  # rule 3 is checked after rule 2

    assert "serverToken" in str(raises(InvalidStepDefinition, envelope))


def test_rule_2_absent_server_token() -> None:
    envelope = example()
    del envelope["userProfile"]["serverToken"]

    assert "serverToken" in str(raises(InvalidStepDefinition, envelope))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("collectionName", ""),
        ("collectionName", None),
        ("collectionId", ""),
        ("selectedRecordId", ""),
    ],
)
def test_rule_3_empty_run_fields(name: str, value: Any) -> None:
    envelope = example()
    envelope[name] = value

    assert name in str(raises(InvalidStepDefinition, envelope))


@pytest.mark.parametrize("name", ["collectionName", "collectionId", "selectedRecordId"])
def test_rule_3_applies_even_without_an_available_step(name: str) -> None:
    envelope = run_with([entry(0, yes_no(), done=True)])
    envelope[name] = ""

    assert name in str(raises(InvalidStepDefinition, envelope))


def test_rule_4_no_available_step_wins_over_later_rules() -> None:
    envelope = run_with([entry(0, {"type": "bogus"}, done=True)])
    envelope["userProfile"]["renderingId"] = "three"

    assert map_run(envelope) is None


def test_rule_5_unknown_available_step_type() -> None:
    envelope = run_with([entry(0, {"type": "bogus"}, done=False)])

    assert "Unknown step type 'bogus'" in str(raises(InvalidStepDefinition, envelope))


@pytest.mark.parametrize("task_type", ["get-everything", None])
def test_rule_5_unknown_available_task_type(task_type: Any) -> None:
    envelope = run_with([entry(0, task(task_type), done=False)])

    assert "task type" in str(raises(InvalidStepDefinition, envelope))


@pytest.mark.parametrize("definition", [None, "condition", []])
def test_rule_5_step_definition_not_an_object(definition: Any) -> None:
    raises(InvalidStepDefinition, run_with([entry(0, definition, done=False)]))


@pytest.mark.parametrize(
    "server_type", ["end", "escalation", "start-sub-workflow", "close-sub-workflow"]
)
def test_rule_5_unsupported_available_step_type(server_type: str) -> None:
    envelope = run_with([entry(0, {"type": server_type, "title": None}, done=False)])

    error = raises(UnsupportedStepType, envelope)

    assert error.user_message == "This step type is not yet supported."


def test_rule_5_comes_before_rule_6() -> None:
    envelope = run_with([entry(0, {"type": "end"}, done=False)])
    envelope["userProfile"]["renderingId"] = float("inf")

    raises(UnsupportedStepType, envelope)


@pytest.mark.parametrize(
    "rendering_id", [None, "3", float("inf"), float("-inf"), float("nan"), True]
)
def test_rule_6_rendering_id_must_be_a_finite_number(rendering_id: Any) -> None:
    envelope = example()
    envelope["userProfile"]["renderingId"] = rendering_id
    envelope["workflowHistory"][-1]["stepName"] = ""  # rule 7 is checked after rule 6

    assert "renderingId is not a finite number" in str(raises(InvalidStepDefinition, envelope))


def test_rule_6_absent_rendering_id() -> None:
    envelope = example()
    del envelope["userProfile"]["renderingId"]

    assert "renderingId" in str(raises(InvalidStepDefinition, envelope))


@pytest.mark.parametrize("rendering_id", [3.5, -1, 2**53])
def test_rule_7_rendering_id_must_be_a_non_negative_integer(rendering_id: float) -> None:
    envelope = example()
    envelope["userProfile"]["renderingId"] = rendering_id

    error = raises(DomainValidation, envelope)

    assert "renderingId" in str(error)
    assert error.user_message == (
        "Internal validation error occurred while preparing the step. Please contact support."
    )


@pytest.mark.parametrize("step_name", ["", None, 5])
def test_rule_7_available_step_needs_a_step_name(step_name: Any) -> None:
    envelope = example()
    envelope["workflowHistory"][-1]["stepName"] = step_name

    assert "stepName" in str(raises(DomainValidation, envelope))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "7"),
        ("id", 7.5),
        ("id", 2**53),
        ("id", 1e300),
        ("email", None),
        ("tags", {"region": 1}),
        ("team", 5),
    ],
)
def test_rule_7_user_profile_shape(field: str, value: Any) -> None:
    envelope = example()
    envelope["userProfile"][field] = value

    assert field in str(raises(DomainValidation, envelope))


def test_rule_7_unknown_trigger_type() -> None:
    envelope = run_with(example()["workflowHistory"], triggerType="cron")

    assert "triggerType" in str(raises(DomainValidation, envelope))


# --- available step, run fields -----------------------------------------------------------------


def test_empty_history_has_no_available_step() -> None:
    assert map_run(run_with([])) is None


def test_absent_history_has_no_available_step() -> None:
    envelope = example()
    del envelope["workflowHistory"]

    assert map_run(envelope) is None


def test_done_last_entry_means_no_available_step() -> None:
    history = [entry(0, yes_no(), done=False), entry(1, task("guideline"), done=True)]

    assert map_run(run_with(history)) is None


def test_available_step_is_the_last_entry_even_when_an_earlier_one_is_not_done() -> None:
    history = [entry(0, task("get-data"), done=False), entry(1, task("guideline"), done=False)]

    dispatch = map_run(run_with(history))

    assert dispatch is not None
    assert dispatch.step.step_id == "step-1"
    assert dispatch.step.step_index == 1
    assert dispatch.step.definition.type is StepType.GUIDANCE


def test_run_id_is_the_string_of_the_id() -> None:
    dispatch = map_run(run_with(example()["workflowHistory"], id=1234))

    assert dispatch is not None
    assert dispatch.step.run_id == "1234"


def test_trigger_type_defaults_to_manual_and_keeps_webhook() -> None:
    without = example()
    del without["triggerType"]
    webhook = run_with(example()["workflowHistory"], triggerType="webhook")

    mapped_without = map_run(without)
    mapped_webhook = map_run(webhook)

    assert mapped_without is not None
    assert mapped_webhook is not None
    assert mapped_without.step.trigger_type is TriggerType.MANUAL
    assert mapped_webhook.step.trigger_type is TriggerType.WEBHOOK


@pytest.mark.parametrize(
    ("selected", "record_id"),
    [("123", ["123"]), ("A1|2024", ["A1", "2024"]), ("x||y", ["x", "", "y"])],
)
def test_base_record_id_is_the_split_selected_record_id(
    selected: str, record_id: list[str]
) -> None:
    dispatch = map_run(run_with(example()["workflowHistory"], selectedRecordId=selected))

    assert dispatch is not None
    assert dispatch.step.base_record_ref == RecordRef("customers", record_id, 0)


# --- previous steps -----------------------------------------------------------------------------


def test_previous_steps_are_done_live_entries_before_the_available_step() -> None:
    never_mapped = {"type": "bogus"}  # would make the run malformed if it were mapped
    steps = previous_steps(
        entry(0, task("get-data")),
        entry(1, never_mapped, done=False),
        entry(2, never_mapped, revised=True),
        entry(3, never_mapped, cancelled=True),
        entry(7, never_mapped),  # after the available step
        entry(5, never_mapped),  # the available step's own index
        entry(4, task("guideline"), revised=False, cancelled=False),
        available_index=5,
    )

    assert [(s.outcome.step_id, s.outcome.step_index) for s in steps] == [
        ("step-0", 0),
        ("step-4", 4),
    ]


def test_previous_steps_keep_history_order_not_index_order() -> None:
    steps = previous_steps(
        entry(2, task("get-data")),
        entry(0, yes_no()),
        entry(1, task("mcp-server", mcpServerId="39")),
        available_index=3,
    )

    assert [s.outcome.step_index for s in steps] == [2, 0, 1]
    assert [s.definition.type for s in steps] == [
        StepType.READ_RECORD,
        StepType.CONDITION,
        StepType.MCP,
    ]


@pytest.mark.parametrize(
    "server_type", ["end", "escalation", "start-sub-workflow", "close-sub-workflow"]
)
def test_unsupported_previous_steps_are_skipped(server_type: str) -> None:
    steps = previous_steps(
        entry(0, yes_no()), entry(1, {"type": server_type}), entry(2, task("guideline"))
    )

    assert [s.outcome.step_index for s in steps] == [0, 2]


@pytest.mark.parametrize("definition", [task("teleport"), {"type": "bogus"}, yes_no(outgoing=[])])
def test_unmappable_previous_step_makes_the_run_malformed(definition: dict[str, Any]) -> None:
    history = [entry(0, definition), entry(1, task("guideline"), done=False)]

    raises(InvalidStepDefinition, run_with(history))


def test_previous_step_failing_the_shape_checks_is_not_malformed() -> None:
    history = [
        entry(0, task("trigger-action", executionType="turbo")),
        entry(1, task("guideline"), done=False),
    ]

    with pytest.raises(StepDefinitionShapeError):
        map_run(run_with(history))


def test_original_step_index_is_copied() -> None:
    (clone, plain) = previous_steps(
        entry(3, task("get-data"), originalStepIndex=1), entry(4, task("get-data"))
    )

    assert clone.original_step_index == 1
    assert plain.original_step_index is None


# --- previous outcomes rebuilt from the context -------------------------------------------------


_ABSENT = object()


def previous_outcome(definition: dict[str, Any], context: Any) -> StepOutcome:
    extra = {} if context is _ABSENT else {"context": context}
    (step,) = previous_steps(entry(0, definition, **extra))
    return step.outcome


@pytest.mark.parametrize(
    ("context", "status"),
    [
        ({"status": "error"}, StepStatus.ERROR),
        ({"status": "awaiting-input"}, StepStatus.AWAITING_INPUT),
        ({"status": "success"}, StepStatus.SUCCESS),
        ({"status": "finished"}, StepStatus.SUCCESS),
        ({"status": None}, StepStatus.SUCCESS),
        ({}, StepStatus.SUCCESS),
        (None, StepStatus.SUCCESS),
        ("free-form legacy context", StepStatus.SUCCESS),
        (_ABSENT, StepStatus.SUCCESS),
    ],
)
def test_previous_status_from_context(context: Any, status: StepStatus) -> None:
    assert previous_outcome(task("get-data"), context).status is status


@pytest.mark.parametrize(
    ("context", "status"),
    [
        ({"status": "error"}, StepStatus.ERROR),
        ({"status": "awaiting-input"}, StepStatus.SUCCESS),
        ({"status": "success"}, StepStatus.SUCCESS),
        ({}, StepStatus.SUCCESS),
    ],
)
def test_guidance_previous_status_only_knows_error(context: Any, status: StepStatus) -> None:
    assert previous_outcome(task("guideline"), context).status is status


def test_previous_outcome_keeps_whitelisted_keys_only() -> None:
    context = {
        "status": "error",
        "error": "The record no longer exists. It may have been deleted.",
        "selectedOption": "Yes",
        "approvalRequest": {"id": "881"},
        "awaitingInputReason": NEEDS_OAUTH_REAUTH,
        "values": {"email": "ada@example.com"},
    }

    assert previous_outcome(task("trigger-action"), context) == StepOutcome(
        type=OutcomeType.RECORD,
        step_id="step-0",
        step_index=0,
        status=StepStatus.ERROR,
        error="The record no longer exists. It may have been deleted.",
    )
    assert previous_outcome(task("mcp-server", mcpServerId="39"), context) == StepOutcome(
        type=OutcomeType.MCP,
        step_id="step-0",
        step_index=0,
        status=StepStatus.ERROR,
        error="The record no longer exists. It may have been deleted.",
    )


def test_previous_condition_outcome_keeps_its_selected_option() -> None:
    outcome = previous_outcome(yes_no(), {"status": "success", "selectedOption": "No"})

    assert outcome == StepOutcome(
        type=OutcomeType.CONDITION,
        step_id="step-0",
        step_index=0,
        status=StepStatus.SUCCESS,
        selected_option="No",
    )


def test_previous_outcome_drops_non_string_error_and_option() -> None:
    outcome = previous_outcome(yes_no(), {"status": "error", "error": 5, "selectedOption": 1})

    assert outcome.status is StepStatus.ERROR
    assert outcome.error is None
    assert outcome.selected_option is None


@pytest.mark.parametrize(
    ("definition", "outcome_type"),
    [
        (yes_no(), OutcomeType.CONDITION),
        (task("get-data"), OutcomeType.RECORD),
        (task("update-data"), OutcomeType.RECORD),
        (task("trigger-action"), OutcomeType.RECORD),
        (task("load-related-record"), OutcomeType.RECORD),
        (task("mcp-server", mcpServerId="39"), OutcomeType.MCP),
        (task("guideline"), OutcomeType.GUIDANCE),
    ],
)
def test_previous_outcome_type_follows_the_step_type(
    definition: dict[str, Any], outcome_type: OutcomeType
) -> None:
    assert previous_outcome(definition, {"status": "success"}).type is outcome_type


# --- server definitions -> normalized definitions (§3.4.2) --------------------------------------


@pytest.mark.parametrize(
    ("task_type", "step_type"),
    [
        ("get-data", StepType.READ_RECORD),
        ("update-data", StepType.UPDATE_RECORD),
        ("trigger-action", StepType.TRIGGER_ACTION),
        ("load-related-record", StepType.LOAD_RELATED_RECORD),
        ("guideline", StepType.GUIDANCE),
    ],
)
def test_task_types_map_to_step_types(task_type: str, step_type: StepType) -> None:
    definition = available_definition(task(task_type, title="T", prompt="P"))

    assert definition.type is step_type
    assert definition.title == "T"
    assert definition.prompt == "P"
    assert definition.options == ()
    assert definition.mcp_server_id is None


def test_mcp_server_task_maps_to_mcp_with_its_server_id() -> None:
    definition = available_definition(
        task("mcp-server", mcpServerId="39", executionType="fully-automated", title="CRM")
    )

    assert definition == StepDefinition(
        type=StepType.MCP, execution_type=FULL, prompt="Do it", title="CRM", mcp_server_id="39"
    )


@pytest.mark.parametrize(
    "fields", [{}, {"mcpServerId": None}, {"mcpServerId": ""}, {"mcpServerId": 39}]
)
def test_mcp_without_server_id_fails_the_shape_checks(fields: dict[str, Any]) -> None:
    with pytest.raises(StepDefinitionShapeError):
        available_definition(task("mcp-server", **fields))


def test_guideline_ignores_type_specific_fields() -> None:
    definition = available_definition(
        task(
            "guideline",
            executionType="manual",
            completionType="user-input",
            inputType="text",
            preRecordedArgs={"fieldName": "tier"},
            mcpServerId="39",
            aiConfigName="gpt",
        )
    )

    assert definition == StepDefinition(
        type=StepType.GUIDANCE, execution_type=MANUAL, prompt="Do it", title="A task"
    )


def test_ai_config_name_is_never_mapped() -> None:
    assert available_definition(task("get-data", aiConfigName="custom")).ai_config_name is None
    assert available_definition(yes_no(aiConfigName="custom")).ai_config_name is None


def test_null_prompt_and_title_become_absent() -> None:
    definition = available_definition(task("get-data", prompt=None, title=None))

    assert definition.prompt is None
    assert definition.title is None


def test_absent_prompt_becomes_absent() -> None:
    raw = task("get-data")
    del raw["prompt"]

    assert available_definition(raw).prompt is None


def test_condition_definition() -> None:
    definition = available_definition(yes_no(executionType="manual", title="VIP?", prompt="P"))

    assert definition == StepDefinition(
        type=StepType.CONDITION,
        execution_type=MANUAL,
        prompt="P",
        title="VIP?",
        options=("Yes", "No"),
    )


@pytest.mark.parametrize(
    ("labels", "options"),
    [
        ([("Yes", "Button yes"), ("No", "Button no")], ("Yes", "No")),  # answer wins
        ([(None, "Approve"), (None, "Reject")], ("Approve", "Reject")),  # else buttonText
        ([("Yes", None), (None, "Later"), ("No", "ignored")], ("Yes", "Later", "No")),
        ([("Yes", None), ("", "Not used"), (None, None), (None, ""), ("No", None)], ("Yes", "No")),
    ],
)
def test_condition_options_from_answer_else_button_text(
    labels: list[tuple[str | None, str | None]], options: tuple[str, ...]
) -> None:
    assert available_definition(condition(*labels)).options == options


def test_condition_option_without_answer_key_uses_button_text() -> None:
    raw = yes_no()
    raw["outgoing"] = [{"stepId": "a", "buttonText": "Go"}, {"stepId": "b", "buttonText": "Stop"}]

    assert available_definition(raw).options == ("Go", "Stop")


def test_condition_options_skip_non_string_labels() -> None:
    raw = condition(("Yes", None), ("No", None))
    raw["outgoing"].append({"stepId": "c", "buttonText": None, "answer": 3})
    raw["outgoing"].append("not a branch")

    assert available_definition(raw).options == ("Yes", "No")


@pytest.mark.parametrize(
    ("labels", "count"),
    [
        ([], 0),
        ([("Yes", None)], 1),
        ([("Yes", None), (None, None)], 1),
        ([("", ""), (None, "")], 0),
    ],
)
def test_condition_needs_two_options(
    labels: list[tuple[str | None, str | None]], count: int
) -> None:
    with pytest.raises(InvalidStepDefinition) as caught:
        available_definition(condition(*labels))

    assert str(caught.value) == f"Condition step requires at least 2 options, got {count}"


def test_condition_without_outgoing_needs_two_options() -> None:
    raw = yes_no()
    del raw["outgoing"]

    with pytest.raises(InvalidStepDefinition, match="at least 2 options, got 0"):
        available_definition(raw)


def test_condition_ignores_pre_recorded_args() -> None:
    assert available_definition(yes_no(preRecordedArgs={"x": 1})).pre_recorded_args is None


# --- execution modes (§2.2) ---------------------------------------------------------------------


def definition_for(step_type: StepType, **fields: Any) -> dict[str, Any]:
    if step_type is StepType.CONDITION:
        return yes_no(**fields)
    task_type = {
        StepType.READ_RECORD: "get-data",
        StepType.UPDATE_RECORD: "update-data",
        StepType.TRIGGER_ACTION: "trigger-action",
        StepType.LOAD_RELATED_RECORD: "load-related-record",
        StepType.MCP: "mcp-server",
        StepType.GUIDANCE: "guideline",
    }[step_type]
    if step_type is StepType.MCP:
        fields.setdefault("mcpServerId", "39")
    return task(task_type, **fields)


MODE_TABLE = {
    StepType.CONDITION: ({MANUAL, FULL}, FULL),
    StepType.READ_RECORD: ({FULL}, FULL),
    StepType.UPDATE_RECORD: ({AWC, FULL}, AWC),
    StepType.TRIGGER_ACTION: ({MANUAL, AWC, FULL}, AWC),
    StepType.LOAD_RELATED_RECORD: ({MANUAL, AWC, FULL}, AWC),
    StepType.MCP: ({AWC, FULL}, AWC),
    StepType.GUIDANCE: ({MANUAL, AWC, FULL}, MANUAL),
}
COERCED = [StepType.CONDITION, StepType.READ_RECORD, StepType.UPDATE_RECORD, StepType.MCP]
REJECTED = [StepType.TRIGGER_ACTION, StepType.LOAD_RELATED_RECORD, StepType.GUIDANCE]


@pytest.mark.parametrize("step_type", list(StepType))
def test_mode_defaults_when_absent(step_type: StepType) -> None:
    raw = definition_for(step_type)
    raw.pop("executionType", None)

    assert available_definition(raw).execution_type is MODE_TABLE[step_type][1]


@pytest.mark.parametrize("step_type", list(StepType))
def test_mode_defaults_when_null(step_type: StepType) -> None:
    raw = definition_for(step_type, executionType=None)

    assert available_definition(raw).execution_type is MODE_TABLE[step_type][1]


@pytest.mark.parametrize(
    ("step_type", "mode"),
    [(step_type, mode) for step_type, (allowed, _) in MODE_TABLE.items() for mode in allowed],
)
def test_allowed_modes_are_kept(step_type: StepType, mode: ExecutionType) -> None:
    raw = definition_for(step_type, executionType=mode.value)

    assert available_definition(raw).execution_type is mode


@pytest.mark.parametrize(
    ("step_type", "mode"),
    [
        (step_type, mode)
        for step_type in COERCED
        for mode in [
            *sorted(set(ExecutionType) - MODE_TABLE[step_type][0]),
            "turbo",
            "Manual",
            3,
        ]
    ],
)
def test_modes_outside_the_allowed_set_are_coerced(step_type: StepType, mode: Any) -> None:
    raw = definition_for(step_type, executionType=getattr(mode, "value", mode))

    assert available_definition(raw).execution_type is MODE_TABLE[step_type][1]


@pytest.mark.parametrize("step_type", REJECTED)
@pytest.mark.parametrize("mode", ["turbo", "Manual", "ai-assisted", 3, ""])
def test_modes_outside_the_allowed_set_are_rejected_for_types_accepting_manual(
    step_type: StepType, mode: Any
) -> None:
    raw = definition_for(step_type, executionType=mode)

    with pytest.raises(StepDefinitionShapeError):
        available_definition(raw)


def test_rejected_mode_is_not_a_malformed_run_error() -> None:
    assert not issubclass(StepDefinitionShapeError, InvalidStepDefinition | UnsupportedStepType)
    assert not issubclass(StepDefinitionShapeError, DomainValidation)


# --- preRecordedArgs ----------------------------------------------------------------------------


def test_read_record_pre_recorded_args() -> None:
    args = {"selectedRecordStepId": "load-1", "selectedRecordStepIndex": 2, "fieldNames": ["a"]}

    definition = available_definition(task("get-data", preRecordedArgs=args))

    assert definition.pre_recorded_args == PreRecordedArgs(
        selected_record_step_id="load-1", selected_record_step_index=2, field_names=("a",)
    )


@pytest.mark.parametrize("value", [None, 0, "gold", {"nested": [1, 2]}, False])
def test_update_record_pre_recorded_value_is_kept_even_when_null(value: Any) -> None:
    args = {"selectedRecordStepIndex": 0, "fieldName": "tier", "value": value}

    definition = available_definition(task("update-data", preRecordedArgs=args))

    assert definition.pre_recorded_args == PreRecordedArgs(
        selected_record_step_index=0, field_name="tier", value=value
    )


def test_trigger_action_and_load_related_pre_recorded_args() -> None:
    filters = {"aggregator": "And", "conditions": [{"field": "x", "operator": "Equal"}]}

    action = available_definition(
        task("trigger-action", preRecordedArgs={"selectedRecordStepId": "s", "actionName": "go"})
    )
    related = available_definition(
        task(
            "load-related-record",
            preRecordedArgs={"relationName": "orders", "filters": filters},
        )
    )

    assert action.pre_recorded_args == PreRecordedArgs(
        selected_record_step_id="s", action_name="go"
    )
    assert related.pre_recorded_args == PreRecordedArgs(relation_name="orders", filters=filters)


def test_pre_recorded_args_keys_of_other_types_are_ignored() -> None:
    definition = available_definition(
        task("trigger-action", preRecordedArgs={"actionName": "go", "fieldName": 5, "value": 1})
    )

    assert definition.pre_recorded_args == PreRecordedArgs(action_name="go")


def test_absent_or_null_pre_recorded_args() -> None:
    assert available_definition(task("get-data")).pre_recorded_args is None
    assert available_definition(task("get-data", preRecordedArgs=None)).pre_recorded_args is None


@pytest.mark.parametrize(
    ("task_type", "args"),
    [
        ("get-data", "workflow-start"),
        ("get-data", ["workflow-start"]),
        ("get-data", {"selectedRecordStepId": 3}),
        ("get-data", {"selectedRecordStepIndex": "1"}),
        ("get-data", {"selectedRecordStepIndex": -1}),
        ("get-data", {"selectedRecordStepIndex": 1.5}),
        ("get-data", {"selectedRecordStepIndex": True}),
        ("get-data", {"fieldNames": "email"}),
        ("get-data", {"fieldNames": ["email", 3]}),
        ("update-data", {"fieldName": ["tier"]}),
        ("update-data", {"selectedRecordStepIndex": None, "fieldName": 1}),
        ("trigger-action", {"actionName": 3}),
        ("trigger-action", {"selectedRecordStepId": {"id": "x"}}),
        ("load-related-record", {"relationName": False}),
    ],
)
def test_pre_recorded_args_of_the_wrong_shape(task_type: str, args: Any) -> None:
    with pytest.raises(StepDefinitionShapeError):
        available_definition(task(task_type, preRecordedArgs=args))


@pytest.mark.parametrize("field", ["prompt", "title"])
def test_non_string_prompt_or_title_fails_the_shape_checks(field: str) -> None:
    with pytest.raises(StepDefinitionShapeError):
        available_definition(task("get-data", **{field: 5}))


# --- user mapping (§3.4.4) ----------------------------------------------------------------------


def test_null_user_strings_become_empty_and_the_token_moves_to_the_dispatch() -> None:
    envelope = example()
    profile = envelope["userProfile"]
    for name in ("firstName", "lastName", "team", "role", "permissionLevel"):
        profile[name] = None
    profile["serverToken"] = "tok-1"

    dispatch = map_run(envelope)

    assert dispatch is not None
    assert dispatch.step.user == StepUser(
        id=7,
        email="ada@example.com",
        first_name="",
        last_name="",
        team="",
        rendering_id=3,
        role="",
        permission_level="",
        tags={"region": "EU"},
    )
    assert dispatch.forest_server_token == "tok-1"


def test_absent_or_null_tags_become_empty() -> None:
    envelope = example()
    envelope["userProfile"]["tags"] = None

    dispatch = map_run(envelope)

    assert dispatch is not None
    assert dispatch.step.user.tags == {}


# --- malformed runs (§3.4.6) --------------------------------------------------------------------


def test_malformed_run_uses_the_last_entry_even_when_done() -> None:
    envelope = run_with(
        [entry(0, yes_no(), done=False), entry(3, task("guideline"), done=True)], id=42
    )
    error = InvalidStepDefinition("Run 42 has an empty collectionName")

    assert malformed_run(envelope, error) == MalformedRun(
        run_id="42",
        step_id="step-3",
        step_index=3,
        user_message=(
            "The workflow step configuration is invalid. Please check the workflow designer."
        ),
        technical_message="Run 42 has an empty collectionName",
    )


def test_malformed_run_from_a_mapping_failure() -> None:
    envelope = run_with([entry(0, yes_no()), entry(1, {"type": "end"}, done=False)], id=7)
    with pytest.raises(UnsupportedStepType) as caught:
        map_run(envelope)

    malformed = malformed_run(envelope, caught.value)

    assert (malformed.run_id, malformed.step_id, malformed.step_index) == ("7", "step-1", 1)
    assert malformed.user_message == "This step type is not yet supported."


@pytest.mark.parametrize("history", [[], None])
def test_malformed_run_without_history_has_no_step(history: Any) -> None:
    envelope = run_with([])
    if history is None:
        del envelope["workflowHistory"]

    malformed = malformed_run(envelope, DomainValidation("bad"))

    assert malformed.run_id == "42"
    assert malformed.step_id is None
    assert malformed.step_index is None
    assert malformed.user_message == DomainValidation.user_message
    assert malformed.technical_message == "bad"


# --- update-step body (§3.5) --------------------------------------------------------------------


def test_update_step_body_for_a_condition_success() -> None:
    outcome = StepOutcome(
        type=OutcomeType.CONDITION,
        step_id="check-vip",
        step_index=0,
        status=StepStatus.SUCCESS,
        selected_option="Yes",
    )

    assert update_step_body("42", outcome) == {
        "runId": 42,
        "stepUpdate": {
            "stepIndex": 0,
            "attributes": {
                "done": True,
                "context": {"status": "success", "selectedOption": "Yes"},
            },
        },
        "executionStatus": {"type": "success"},
    }


def test_update_step_body_for_awaiting_input() -> None:
    outcome = StepOutcome(
        type=OutcomeType.RECORD,
        step_id="update-tier",
        step_index=1,
        status=StepStatus.AWAITING_INPUT,
    )

    assert update_step_body("42", outcome) == {
        "runId": 42,
        "stepUpdate": {
            "stepIndex": 1,
            "attributes": {"done": False, "context": {"status": "awaiting-input"}},
        },
        "executionStatus": {"type": "awaiting-input"},
    }


def test_update_step_body_for_an_error() -> None:
    message = "The record no longer exists. It may have been deleted."
    outcome = StepOutcome(
        type=OutcomeType.RECORD,
        step_id="read",
        step_index=2,
        status=StepStatus.ERROR,
        error=message,
    )

    assert update_step_body("42", outcome) == {
        "runId": 42,
        "stepUpdate": {
            "stepIndex": 2,
            "attributes": {"done": True, "context": {"status": "error", "error": message}},
        },
        "executionStatus": {"type": "error", "message": message},
    }


@pytest.mark.parametrize("error", [None, ""])
def test_update_step_body_error_message_is_never_empty(error: str | None) -> None:
    outcome = StepOutcome(
        type=OutcomeType.GUIDANCE,
        step_id="note",
        step_index=5,
        status=StepStatus.ERROR,
        error=error,
    )

    body = update_step_body("42", outcome)

    assert body["executionStatus"] == {"type": "error", "message": "Unknown error"}
    assert body["stepUpdate"]["attributes"] == {"done": True, "context": {"status": "error"}}


def test_update_step_body_carries_approval_request_and_awaiting_reason() -> None:
    record = StepOutcome(
        type=OutcomeType.RECORD,
        step_id="refund",
        step_index=3,
        status=StepStatus.SUCCESS,
        approval_request_id="881",
    )
    mcp = StepOutcome(
        type=OutcomeType.MCP,
        step_id="crm",
        step_index=4,
        status=StepStatus.AWAITING_INPUT,
        awaiting_input_reason=NEEDS_OAUTH_REAUTH,
    )

    assert update_step_body("42", record)["stepUpdate"]["attributes"] == {
        "done": True,
        "context": {"status": "success", "approvalRequest": {"id": "881"}},
    }
    assert update_step_body("42", mcp)["stepUpdate"]["attributes"] == {
        "done": False,
        "context": {"status": "awaiting-input", "awaitingInputReason": "needs-oauth-reauth"},
    }
    assert update_step_body("42", mcp)["executionStatus"] == {"type": "awaiting-input"}


def test_update_step_body_run_id_is_an_integer() -> None:
    outcome = StepOutcome(
        type=OutcomeType.GUIDANCE, step_id="note", step_index=0, status=StepStatus.SUCCESS
    )

    run_id = update_step_body("1234", outcome)["runId"]

    assert run_id == 1234
    assert type(run_id) is int

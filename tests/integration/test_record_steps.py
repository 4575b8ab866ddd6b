"""The four record steps end to end: fake orchestrator, fake agent, real adapters and runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from executor.extension import runner_of
from tests.drivers import Executor
from tests.fakes.agent import FakeAgent
from tests.fakes.orchestrator import FakeOrchestrator, record_step

GET, UPDATE, ACTION, LOAD = "get-data", "update-data", "trigger-action", "load-related-record"
AI_UNAVAILABLE = "The AI service is unavailable. Please try again or contact your administrator."
STEP_STATE = "An unexpected error occurred while processing this step."


@pytest.fixture
def executor(make_app: Callable[..., Flask], orchestrator: FakeOrchestrator) -> Iterator[Executor]:
    app = make_app(POLLING_ENABLED=False)
    runner_of(app).start()
    yield Executor(app, orchestrator)


def error(message: str) -> dict[str, Any]:
    return {"status": "error", "error": message}


SUCCESS = {"status": "success"}
AWAITING = {"status": "awaiting-input"}


# --- read-record -------------------------------------------------------------------------------


def test_read_record_stores_the_pinned_fields_of_the_base_record(
    executor: Executor, agent: FakeAgent
) -> None:
    outcome = executor.run(1, [record_step(GET, fieldNames=["name", "email", "ghost"])])
    assert outcome == SUCCESS
    entry = executor.entry(1)
    assert entry["selectedRecordRef"] == {
        "collectionName": "customers",
        "recordId": ["1"],
        "stepIndex": 0,
    }
    assert entry["executionParams"] == {
        "fields": [
            {"name": "name", "displayName": "Name"},
            {"name": "email", "displayName": "Email"},
        ]
    }
    assert entry["executionResult"]["fields"] == [
        {"name": "name", "displayName": "Name", "value": "Ada Lovelace"},
        {"name": "email", "displayName": "Email", "value": "ada@example.com"},
        {"name": "ghost", "displayName": "ghost", "error": "Field not found: ghost"},
    ]
    read = agent.requests_to("/forest/customers/1")[-1]
    assert read.query["fields[customers]"] == "name,email"
    assert read.query["timezone"] == "Europe/Paris"
    assert read.claims is not None and read.claims["rendering_id"] == 3
    [log] = executor.audit(settled=1)
    assert (log["action"], log["type"], log["records"], log["status"]) == (
        "index",
        "read",
        ["1"],
        "completed",
    )
    assert log["relationships"]["collection"]["data"] == {"id": "11", "type": "collections"}


def test_read_record_without_pinned_fields_needs_the_ai(
    executor: Executor, agent: FakeAgent
) -> None:
    assert executor.run(1, [record_step(GET)]) == error(AI_UNAVAILABLE)
    assert agent.requests_to("/forest/customers") == []


def test_read_record_of_unknown_fields_only_fails_clearly(executor: Executor) -> None:
    assert executor.run(1, [record_step(GET, fieldNames=["ghost"])]) == error(
        "The AI selected fields that don't exist on this record. Try rephrasing the step's prompt."
    )


def test_a_deleted_record_is_reported_and_its_audit_entry_failed(
    executor: Executor, agent: FakeAgent
) -> None:
    agent.remove_record("customers", "1")
    outcome = executor.run(1, [record_step(GET, fieldNames=["name"])])
    assert outcome == error("The record no longer exists. It may have been deleted.")
    assert executor.audit(settled=1)[0]["status"] == "failed"


def test_no_data_is_touched_without_its_audit_entry(
    executor: Executor, orchestrator: FakeOrchestrator, agent: FakeAgent
) -> None:
    orchestrator.fail("/api/activity-logs-requests", 400)
    outcome = executor.run(1, [record_step(GET, fieldNames=["name"])])
    assert outcome == error(
        "Could not record this step in the audit log. Please try again, or contact your "
        "administrator if the problem persists."
    )
    assert agent.requests_to("/forest/customers/1") == []


# --- update-record -----------------------------------------------------------------------------


def update_tier(mode: str = "automated-with-confirmation", **pre: Any) -> dict[str, Any]:
    return record_step(UPDATE, mode, **({"fieldName": "tier", "value": "silver"} | pre))


def test_update_waits_for_confirmation_then_writes(executor: Executor, agent: FakeAgent) -> None:
    assert executor.run(1, [update_tier()]) == AWAITING
    assert executor.entry(1)["pendingData"] == {
        "displayName": "Tier",
        "name": "tier",
        "value": "silver",
    }
    assert agent.updates == []

    assert executor.trigger(1, {"userConfirmed": True}) == SUCCESS
    [update] = agent.updates
    assert (update.collection, update.record_id, update.attributes) == (
        "customers",
        "1",
        {"tier": "silver"},
    )
    entry = executor.entry(1)
    assert entry["idempotencyPhase"] == "done"
    assert entry["executionParams"] == {"displayName": "Tier", "name": "tier", "value": "silver"}
    assert entry["executionResult"]["updatedValues"]["tier"] == "silver"
    assert entry["userConfirmation"] == {"userConfirmed": True}
    assert entry["pendingData"]["value"] == "silver"  # the proposal is kept beside the answer
    [log] = executor.audit(settled=1)
    assert (log["action"], log["type"], log["label"], log["status"]) == (
        "update",
        "write",
        "updated",
        "completed",
    )


def test_a_value_given_at_confirmation_overrides_the_proposal(
    executor: Executor, agent: FakeAgent
) -> None:
    executor.run(1, [update_tier()])
    assert executor.trigger(1, {"userConfirmed": True, "value": "bronze"}) == SUCCESS
    assert agent.updates[0].attributes == {"tier": "bronze"}


def test_a_rejected_update_is_skipped_without_touching_the_record(
    executor: Executor, agent: FakeAgent
) -> None:
    executor.run(1, [update_tier()])
    assert executor.trigger(1, {"userConfirmed": False}) == SUCCESS
    assert executor.entry(1)["executionResult"] == {"skipped": True}
    assert agent.updates == []


@pytest.mark.parametrize(
    "body", [{"userConfirmed": "yes"}, {"value": "gold"}, {"userConfirmed": True, "extra": 1}, "ok"]
)
def test_an_invalid_confirmation_is_an_error_and_loses_nothing(
    executor: Executor, agent: FakeAgent, body: Any
) -> None:
    executor.run(1, [update_tier()])
    before = executor.entry(1)
    assert executor.trigger(1, body) == error(STEP_STATE)
    assert executor.entry(1) == before  # the proposal is intact for a retry
    assert agent.updates == []


def test_without_an_answer_the_update_keeps_waiting(executor: Executor) -> None:
    executor.run(1, [update_tier()])
    assert executor.trigger(1) == AWAITING


def test_a_value_that_does_not_fit_the_field_is_refused_at_confirmation(
    executor: Executor, agent: FakeAgent
) -> None:
    executor.run(1, [update_tier()])
    assert executor.trigger(1, {"userConfirmed": True, "value": "platinum"}) == error(STEP_STATE)
    assert agent.updates == []


def test_a_fully_automated_update_writes_at_once(executor: Executor, agent: FakeAgent) -> None:
    assert executor.run(1, [update_tier("fully-automated")]) == SUCCESS
    assert agent.updates[0].attributes == {"tier": "silver"}


@pytest.mark.parametrize(
    ("pre", "message"),
    [
        ({"fieldName": None, "value": "x"}, "The pre-configured step parameters are invalid"),
        (
            {"fieldName": "ghost"},
            "The AI selected a field that doesn't exist on this record. Try rephrasing the "
            "step's prompt.",
        ),
    ],
)
def test_update_configuration_errors(executor: Executor, pre: dict[str, Any], message: str) -> None:
    step = record_step(UPDATE, "fully-automated", **{k: v for k, v in pre.items() if v is not None})
    assert executor.run(1, [step]) == error(message)


def test_a_crash_mid_write_is_never_repeated(executor: Executor, agent: FakeAgent) -> None:
    agent.fail("/forest/customers/1", 500)
    assert executor.run(1, [update_tier("fully-automated")]) == error(
        "An error occurred while accessing your data. Please try again."
    )
    assert executor.entry(1)["idempotencyPhase"] == "executing"
    # Re-dispatched, the step refuses to act a second time: the write may have happened.
    assert executor.redispatch(1) == error(STEP_STATE)
    assert agent.count("/forest/customers/1", "PUT") == 1
    assert [e["status"] for e in executor.audit(settled=1)] == ["failed"]


def test_a_finished_update_replays_its_outcome_without_calling_the_agent(
    executor: Executor, agent: FakeAgent
) -> None:
    assert executor.run(1, [update_tier("fully-automated")]) == SUCCESS
    assert executor.redispatch(1) == SUCCESS
    assert executor.redispatch(1) == SUCCESS
    assert len(agent.updates) == 1


# --- trigger-action ----------------------------------------------------------------------------


def action_step(mode: str, action: str, **pre: Any) -> dict[str, Any]:
    return record_step(ACTION, mode, actionName=action, **pre)


def test_a_formless_action_runs_at_once_when_fully_automated(
    executor: Executor, agent: FakeAgent
) -> None:
    assert executor.run(1, [action_step("fully-automated", "send-invoice")]) == SUCCESS
    [execution] = agent.executions
    assert (execution.action, execution.ids, execution.values) == ("send-invoice", ["1"], {})
    entry = executor.entry(1)
    assert entry["executionResult"] == {
        "success": True,
        "actionResult": {"success": "Invoice sent"},
    }
    assert entry["executionParams"] == {"displayName": "Send invoice", "name": "send-invoice"}
    assert entry["idempotencyPhase"] == "done"
    [log] = executor.audit(settled=1)
    assert (log["action"], log["label"]) == ("action", 'triggered the action "send-invoice"')


def test_a_confirmed_action_records_what_the_front_did_without_running_it(
    executor: Executor, agent: FakeAgent
) -> None:
    assert executor.run(1, [action_step("automated-with-confirmation", "send-invoice")]) == AWAITING
    assert executor.entry(1)["pendingData"] == {
        "displayName": "Send invoice",
        "name": "send-invoice",
    }
    assert executor.trigger(1, {"userConfirmed": True, "actionResult": {"ok": 1}}) == SUCCESS
    assert agent.executions == []
    assert executor.entry(1)["executionResult"] == {
        "success": True,
        "submissionOutcome": "executed",
        "actionResult": {"ok": 1},
        "submittedBy": "user",
    }


def test_a_confirmation_without_the_action_s_result_is_refused(executor: Executor) -> None:
    executor.run(1, [action_step("automated-with-confirmation", "send-invoice")])
    assert executor.trigger(1, {"userConfirmed": True}) == error(STEP_STATE)


def test_a_rejected_action_is_skipped(executor: Executor, agent: FakeAgent) -> None:
    executor.run(1, [action_step("manual", "send-invoice")])
    assert executor.trigger(1, {"userConfirmed": False}) == SUCCESS
    assert executor.entry(1)["executionResult"] == {"skipped": True}
    assert agent.executions == []


def test_a_manual_action_with_a_form_pauses_with_the_agent_s_form(
    executor: Executor, agent: FakeAgent
) -> None:
    assert executor.run(1, [action_step("manual", "refund")]) == AWAITING
    form = executor.entry(1)["pendingData"]["form"]
    assert form["aiFilledValues"] == []
    names = [f["name"] for f in form["fields"]]
    assert names == ["amount", "reason", "currency", "notify_customer"]
    reason = next(f for f in form["fields"] if f["name"] == "reason")
    assert reason["enumValues"] == ["late", "damaged", "other"]
    assert agent.count("/forest/_actions/customers/1/refund/hooks/load") == 1
    assert executor.audit() == []  # a pause touches no data


def test_a_static_form_is_built_without_asking_the_agent(
    executor: Executor, agent: FakeAgent
) -> None:
    assert executor.run(1, [action_step("manual", "add-note")]) == AWAITING
    fields = executor.entry(1)["pendingData"]["form"]["fields"]
    assert [(f["name"], f["isRequired"], f["value"]) for f in fields] == [
        ("note", True, None),
        ("pinned", False, False),
    ]
    assert agent.count("/forest/_actions/customers/4/add-note/hooks/load") == 0


def test_an_action_with_a_form_needs_the_ai_to_fill_it(executor: Executor) -> None:
    outcome = executor.run(1, [action_step("automated-with-confirmation", "refund")])
    assert outcome == error(AI_UNAVAILABLE)


def test_an_action_needing_approval_files_a_request_for_the_user(
    executor: Executor, orchestrator: FakeOrchestrator, agent: FakeAgent
) -> None:
    step = action_step("fully-automated", "archive")
    step["prompt"] = "Archive this customer: they left"
    outcome = executor.run(1, [step])
    [(approval_id, approval)] = orchestrator.approvals.items()
    assert outcome == {"status": "success", "approvalRequest": {"id": approval_id}}
    assert approval["action_name"] == "archive"
    assert approval["record_ids"] == ["1"]
    assert approval["rendering"] == "3"
    assert approval["comment"] == "Archive this customer: they left"
    result = executor.entry(1)["executionResult"]
    assert result == {
        "success": True,
        "submissionOutcome": "pending-approval",
        "submittedBy": "ai",
        "approvalRequest": {"id": approval_id},
    }
    assert agent.executions == []


def test_a_global_action_is_sent_without_a_record(executor: Executor, agent: FakeAgent) -> None:
    assert executor.run(1, [action_step("fully-automated", "export-all")]) == SUCCESS
    assert agent.executions[0].ids == []
    assert executor.audit(settled=1)[0]["records"] == []


def test_an_approval_the_front_filed_is_reported(executor: Executor) -> None:
    executor.run(1, [action_step("automated-with-confirmation", "archive")])
    outcome = executor.trigger(
        1,
        {
            "userConfirmed": True,
            "submissionOutcome": "pending-approval",
            "approvalRequest": {"id": "9"},
        },
    )
    assert outcome == {"status": "success", "approvalRequest": {"id": "9"}}


def test_an_unknown_action_fails_clearly(executor: Executor) -> None:
    assert executor.run(1, [action_step("fully-automated", "teleport")]) == error(
        "The AI selected an action that doesn't exist on this record. Try rephrasing the "
        "step's prompt."
    )


# --- load-related-record -----------------------------------------------------------------------


def load_step(mode: str, **pre: Any) -> dict[str, Any]:
    return record_step(LOAD, mode, title="Load related", **pre)


def test_a_manual_load_offers_every_relation_and_the_related_records(
    executor: Executor, agent: FakeAgent
) -> None:
    assert executor.run(1, [load_step("manual", relationName="orders")]) == AWAITING
    pending = executor.entry(1)["pendingData"]
    assert [f["name"] for f in pending["availableFields"]] == ["orders", "address", "company"]
    assert pending["suggestedField"] == {"name": "orders", "displayName": "Orders"}
    assert pending["availableRecordIds"][:2] == [
        {"recordId": [101], "referenceFieldValue": "A-101"},
        {"recordId": [102], "referenceFieldValue": "A-102"},
    ]
    assert len(pending["availableRecordIds"]) == 5
    assert "suggestedRecord" not in pending and "suggestNoRecord" not in pending
    [log] = executor.audit(settled=1)
    assert (log["action"], log["label"]) == ("listRelatedData", 'list relation "Orders"')
    listed = agent.requests_to("/forest/customers/1/relationships/orders")[0]
    assert (listed.query["page[size]"], listed.query["page[number]"]) == ("50", "1")


def test_the_user_picks_a_related_record(executor: Executor) -> None:
    executor.run(1, [load_step("manual", relationName="orders")])
    outcome = executor.trigger(
        1, {"userConfirmed": True, "fieldName": "orders", "selectedRecordId": "102"}
    )
    assert outcome == SUCCESS
    result = executor.entry(1)["executionResult"]
    assert result == {
        "relation": {"name": "orders", "displayName": "Orders"},
        "record": {"collectionName": "orders", "recordId": ["102"], "stepIndex": 0},
    }


def test_previewing_another_relation_recomputes_its_candidates(executor: Executor) -> None:
    executor.run(1, [load_step("manual", relationName="orders")])
    assert executor.trigger(1, {"fieldName": "company"}) == AWAITING
    entry = executor.entry(1)
    assert "userConfirmation" not in entry
    assert entry["pendingData"]["suggestedField"] == {"name": "company", "displayName": "Company"}
    assert entry["pendingData"]["suggestedRecord"] == {
        "recordId": ["1"],
        "referenceFieldValue": "Acme",
    }
    assert [f["name"] for f in entry["pendingData"]["availableFields"]] == [
        "orders",
        "address",
        "company",
    ]
    assert executor.trigger(1, {"userConfirmed": True}) == SUCCESS
    assert executor.entry(1)["executionResult"]["record"]["collectionName"] == "companies"


def test_a_fully_automated_to_one_load_needs_no_ai(executor: Executor) -> None:
    assert executor.run(1, [load_step("fully-automated", relationName="company")]) == SUCCESS
    assert executor.entry(1)["executionResult"]["record"] == {
        "collectionName": "companies",
        "recordId": ["1"],
        "stepIndex": 0,
    }


def test_a_fully_automated_to_many_load_falls_back_to_the_manual_list(executor: Executor) -> None:
    assert executor.run(1, [load_step("fully-automated", relationName="orders")]) == AWAITING
    pending = executor.entry(1)["pendingData"]
    assert len(pending["availableRecordIds"]) == 5
    assert "suggestNoRecord" not in pending  # degraded: nothing was judged


def test_no_related_record_suggests_none_or_skips(executor: Executor) -> None:
    executor.orchestrator.add_run(
        2, [load_step("automated-with-confirmation", relationName="company")], record_id="3"
    )
    assert executor.trigger(2) == AWAITING
    assert executor.entry(2)["pendingData"]["suggestNoRecord"] is True
    executor.orchestrator.add_run(
        3, [load_step("fully-automated", relationName="company")], record_id="3"
    )
    assert executor.trigger(3) == SUCCESS
    assert executor.entry(3)["executionResult"] == {"skipped": True}


def test_filters_reach_the_agent_in_its_own_spelling(executor: Executor, agent: FakeAgent) -> None:
    filters = {"field": "status", "operator": "Equal", "value": "paid"}
    executor.run(1, [load_step("manual", relationName="orders", filters=filters)])
    pending = executor.entry(1)["pendingData"]
    assert len(pending["availableRecordIds"]) == 2
    listed = agent.requests_to("/forest/customers/1/relationships/orders")[0]
    assert '"operator": "equal"' in listed.query["filters"]


def test_a_polymorphic_relation_follows_the_record_s_own_target(executor: Executor) -> None:
    steps = [load_step("fully-automated", relationName="commentable")]
    assert executor.run(1, steps, collection="comments", record_id="2") == SUCCESS
    assert executor.entry(1)["executionResult"]["record"]["collectionName"] == "orders"


def test_a_pinned_relation_that_does_not_exist_is_a_configuration_error(executor: Executor) -> None:
    assert executor.run(1, [load_step("manual", relationName="ghost")]) == error(
        "The pre-configured step parameters are invalid"
    )


# --- chains ------------------------------------------------------------------------------------


def test_a_loaded_record_is_the_source_of_the_next_steps(
    executor: Executor, agent: FakeAgent, orchestrator: FakeOrchestrator
) -> None:
    steps = [
        load_step("fully-automated", relationName="company"),
        record_step(GET, selectedRecordStepId="step-0", fieldNames=["name"]),
        record_step(
            UPDATE,
            "automated-with-confirmation",
            selectedRecordStepId="step-0",
            fieldName="name",
            value="Acme Corp",
        ),
        action_step("fully-automated", "send-invoice", selectedRecordStepId="workflow-start"),
    ]
    assert executor.run(1, steps) == SUCCESS
    assert executor.outcomes(1) == [SUCCESS, SUCCESS, AWAITING]
    assert executor.entry(1, 1)["executionResult"]["fields"][0]["value"] == "Acme"
    assert executor.trigger(1, {"userConfirmed": True}) == SUCCESS
    assert agent.updates[0].collection == "companies"
    assert executor.outcomes(1)[-1] == SUCCESS and orchestrator.runs["1"].finished
    view = executor.steps_view(1)
    assert [s["stepIndex"] for s in view] == [0, 1, 2, 3]
    assert view[0]["executionResult"]["record"]["recordId"] == "1"  # pipe-joined on the wire


def test_a_source_step_that_loaded_nothing_is_named(executor: Executor) -> None:
    steps = [
        load_step("fully-automated", relationName="company"),
        record_step(GET, selectedRecordStepId="step-0", fieldNames=["name"]),
    ]
    executor.run(1, steps, record_id="3")
    assert executor.outcomes(1)[-1] == error(
        'This step uses "Load related" as its source, but that step didn\'t load any record.'
    )


def test_composite_ids_travel_pipe_joined(executor: Executor, agent: FakeAgent) -> None:
    steps = [record_step(GET, fieldNames=["seats"])]
    assert executor.run(1, steps, collection="subscriptions", record_id="pro|2024") == SUCCESS
    assert agent.requests_to("/forest/subscriptions/pro|2024")[0].raw_path.endswith("pro%7C2024")
    assert executor.steps_view(1)[0]["selectedRecordRef"]["recordId"] == "pro|2024"


# --- the poll loop and shutdown ----------------------------------------------------------------


def test_polled_record_steps_run_like_triggered_ones(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator, agent: FakeAgent
) -> None:
    orchestrator.add_run(1, [record_step(GET, fieldNames=["name"]), update_tier()], record_id="2")
    runner_of(make_app()).start()
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(1)) == 2)
    contexts = [u["stepUpdate"]["attributes"]["context"] for u in orchestrator.updates(1)]
    assert contexts == [SUCCESS, AWAITING]
    assert agent.requests_to("/forest/customers/2")[0].query["fields[customers]"] == "name"


def test_stop_waits_for_the_audit_status_updates(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    orchestrator.delay("/api/activity-logs-requests/idx", 0.5)  # the status updates are slow
    app = make_app(POLLING_ENABLED=False)
    executor = Executor(app, orchestrator)
    executor.runner.start()
    assert executor.run(1, [record_step(GET, fieldNames=["name"])]) == SUCCESS
    assert orchestrator.activity_logs[0]["status"] == "pending"
    executor.runner.stop()
    assert orchestrator.activity_logs[0]["status"] == "completed"


# --- more edges ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "body"),
    [
        ([record_step(ACTION, "manual", actionName="send-invoice")], {"userConfirmed": 1}),
        (
            [record_step(ACTION, "manual", actionName="send-invoice")],
            {"userConfirmed": True, "approvalRequest": {"id": ""}},
        ),
        ([record_step(LOAD, "manual", relationName="orders")], {"selectedRecordId": "102"}),
        (
            [record_step(LOAD, "manual", relationName="orders")],
            {"userConfirmed": True, "fieldName": "orders"},
        ),
        (
            [record_step(LOAD, "manual", relationName="orders")],
            {"userConfirmed": True, "selectedRecordId": "1||2"},
        ),
    ],
)
def test_invalid_answers_to_actions_and_loads_lose_nothing(
    executor: Executor, steps: list[dict[str, Any]], body: Any
) -> None:
    assert executor.run(1, steps) == AWAITING
    before = executor.entry(1)
    assert executor.trigger(1, body) == error(STEP_STATE)
    assert executor.entry(1) == before


def test_a_finished_approval_request_is_reported_again_on_replay(
    executor: Executor, orchestrator: FakeOrchestrator
) -> None:
    first = executor.run(1, [action_step("fully-automated", "archive")])
    assert executor.redispatch(1) == first
    assert len(orchestrator.approvals) == 1


def test_a_field_added_after_the_schema_was_cached_is_found(
    executor: Executor, orchestrator: FakeOrchestrator
) -> None:
    schema = orchestrator.collection_schemas["customers"]
    vip = next(f for f in schema["fields"] if f["fieldName"] == "vip")
    schema["fields"].remove(vip)
    assert executor.run(1, [record_step(GET, fieldNames=["name"])]) == SUCCESS  # now cached
    schema["fields"].append(vip)  # the customer adds the field in Forest Admin
    assert executor.run(2, [record_step(GET, fieldNames=["vip"])]) == SUCCESS
    assert executor.entry(2)["executionResult"]["fields"] == [
        {"name": "vip", "displayName": "Vip", "value": True}
    ]


def test_an_unreachable_agent_stops_the_start(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    from executor.errors import AgentProbeError
    from executor.runner import RunnerState

    orchestrator.agent_url = "http://127.0.0.1:9"
    runner = runner_of(make_app())
    with pytest.raises(AgentProbeError, match="Agent probe failed: cannot reach"):
        runner.start()
    assert runner.state is RunnerState.IDLE


def test_an_agent_answering_the_probe_with_an_error_stops_the_start(
    make_app: Callable[..., Flask], agent: FakeAgent
) -> None:
    from executor.errors import AgentProbeError

    agent.fail("/forest", 503, times=2)
    with pytest.raises(AgentProbeError, match="responded with 503"):
        runner_of(make_app()).start()

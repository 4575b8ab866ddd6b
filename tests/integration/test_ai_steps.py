"""The AI paths of every step, through each model wire format, against the fake model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from executor.extension import runner_of
from tests.drivers import Executor
from tests.fakes.agent import FakeAgent
from tests.fakes.model import FakeModel
from tests.fakes.orchestrator import (
    FakeOrchestrator,
    condition_step,
    guidance_step,
    record_step,
)

WIRES = ["forest-proxy", "openai", "anthropic"]
SUCCESS = {"status": "success"}
AWAITING = {"status": "awaiting-input"}
GET, UPDATE, ACTION, LOAD = "get-data", "update-data", "trigger-action", "load-related-record"


def error(message: str) -> dict[str, Any]:
    return {"status": "error", "error": message}


def ai_settings(wire: str, model: FakeModel, orchestrator: FakeOrchestrator) -> dict[str, Any]:
    if wire == "openai":
        return {
            "AI_PROVIDER": "openai",
            "AI_MODEL": "gpt-test",
            "AI_API_KEY": "sk-test",
            "AI_BASE_URL": model.openai_base_url,
        }
    if wire == "anthropic":
        return {
            "AI_PROVIDER": "anthropic",
            "AI_MODEL": "claude-test",
            "AI_API_KEY": "ak-test",
            "AI_BASE_URL": model.anthropic_base_url,
        }
    orchestrator.model = model  # no provider configured: the Forest server's AI proxy
    return {}


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def executor(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator, model: FakeModel, wire: str
) -> Iterator[Executor]:
    app = make_app(
        POLLING_ENABLED=False, AI_INVOKE_TIMEOUT_S=2, **ai_settings(wire, model, orchestrator)
    )
    runner_of(app).start()
    yield Executor(app, orchestrator)


def choose_relation(model: FakeModel, label_part: str, reasoning: str) -> None:
    """Script the AI to follow the offered relation whose label contains ``label_part``."""

    def answer(request: Any) -> dict[str, Any]:
        labels = request.tool_schemas["select-relation-to-follow"]["properties"]["relation"]
        chosen = next(label for label in labels["enum"] if label_part in label)
        return {
            "name": "select-relation-to-follow",
            "arguments": {"relation": chosen, "reasoning": reasoning},
        }

    model.answer_with(answer)


# --- the model port, through each wire format ----------------------------------------------------


def test_the_ai_chooses_a_condition_option(executor: Executor, model: FakeModel, wire: str) -> None:
    model.answer(
        "choose-gateway-option",
        {"reasoning": "40 orders this year", "question": "VIP?", "option": "Yes"},
    )
    outcome = executor.run(1, [condition_step(execution_type="fully-automated")])
    assert outcome == {"status": "success", "selectedOption": "Yes"}
    assert executor.entry(1) == {
        "type": "condition",
        "stepIndex": 0,
        "executionParams": {"answer": "Yes", "reasoning": "40 orders this year"},
        "executionResult": {"answer": "Yes"},
    }
    [request] = model.requests
    assert request.wire == wire
    assert request.tools == ["choose-gateway-option"]
    assert request.tool_choice in ("required", {"type": "any"})
    assert request.system.startswith("Step executed by: Ada  (ada@example.com, id: 7)")
    assert "Role: Admin | Team: Operations" in request.system
    assert request.messages == [{"role": "user", "content": "**Question**: Is the customer a VIP?"}]
    if wire == "forest-proxy":
        assert request.headers["user-id"] == "7"
        assert request.body["model"] == "gpt-4.1"
        assert "authorization" not in request.headers


def test_an_undecided_ai_is_an_error_with_its_reasoning_kept(
    executor: Executor, model: FakeModel
) -> None:
    model.answer(
        "choose-gateway-option", {"reasoning": "unclear", "question": "VIP?", "option": None}
    )
    outcome = executor.run(1, [condition_step(execution_type="fully-automated")])
    assert outcome == error("The AI couldn't decide. Try rephrasing the step's prompt.")
    assert executor.entry(1)["executionParams"] == {"answer": None, "reasoning": "unclear"}
    assert "executionResult" not in executor.entry(1)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            lambda m: m.no_tool_call(),
            "The AI couldn't decide what to do. Try rephrasing the step's prompt.",
        ),
        (
            lambda m: m.answer("choose-gateway-option", "{not json"),
            "The AI returned an unexpected response. Try rephrasing the step's prompt.",
        ),
        (
            lambda m: m.answer("choose-gateway-option", None),
            "The AI returned an unexpected response. Try rephrasing the step's prompt.",
        ),
        (
            lambda m: m.answer(
                "choose-gateway-option", {"reasoning": "r", "question": "q", "option": "Maybe"}
            ),
            "The AI made an unexpected choice. Try rephrasing the step's prompt.",
        ),
        (
            lambda m: m.fail(400),
            "The AI service is unavailable. Please try again or contact your administrator.",
        ),
        (
            lambda m: m.slow(5),
            "The AI provider did not respond in time. Please try again, or contact your "
            "administrator if the problem persists.",
        ),
    ],
    ids=["no-tool-call", "malformed", "missing-arguments", "outside-the-schema", "refused", "slow"],
)
def test_ai_failures_become_the_protocol_s_errors(
    executor: Executor, model: FakeModel, wire: str, script: Any, message: str
) -> None:
    script(model)
    assert executor.run(1, [condition_step(execution_type="fully-automated")]) == error(message)


def test_transient_provider_errors_are_retried(executor: Executor, model: FakeModel) -> None:
    model.fail(429)
    model.fail(503)
    model.answer("choose-gateway-option", {"reasoning": "r", "question": "q", "option": "No"})
    outcome = executor.run(1, [condition_step(execution_type="fully-automated")])
    assert outcome == {"status": "success", "selectedOption": "No"}
    assert len(model.requests) == 3


# --- the AI path of every step (through the Forest AI proxy, the default) -------------------------


@pytest.fixture
def ai(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator, model: FakeModel
) -> Iterator[Executor]:
    orchestrator.model = model
    app = make_app(POLLING_ENABLED=False, AI_INVOKE_TIMEOUT_S=2)
    runner_of(app).start()
    yield Executor(app, orchestrator)


def test_the_ai_picks_the_record_among_candidates(ai: Executor, model: FakeModel) -> None:
    model.answer("select-record", {"recordIdentifier": "Step 0 - Companies #1"})
    steps = [
        record_step(LOAD, "fully-automated", relationName="company"),
        record_step(GET, fieldNames=["name"]),
    ]
    ai.run(1, steps, record_id="1")
    assert ai.outcomes(1) == [SUCCESS, SUCCESS]
    assert ai.entry(1, 1)["selectedRecordRef"]["collectionName"] == "companies"
    [request] = model.prompts_for("select-record")
    assert request.tool_schemas["select-record"]["properties"]["recordIdentifier"]["enum"] == [
        "Step 0 - Customers #1",
        "Step 0 - Companies #1",
    ]


def test_the_ai_chooses_the_fields_to_read(ai: Executor, model: FakeModel) -> None:
    model.answer("read-selected-record-fields", {"fieldNames": ["Name", "tier", "Shoe size"]})
    assert ai.run(1, [record_step(GET)]) == SUCCESS
    fields = ai.entry(1)["executionResult"]["fields"]
    assert fields == [
        {"name": "name", "displayName": "Name", "value": "Ada Lovelace"},
        {"name": "tier", "displayName": "Tier", "value": "gold"},
        {"name": "Shoe size", "displayName": "Shoe size", "error": "Field not found: Shoe size"},
    ]
    [request] = model.requests
    description = request.tool_schemas["read-selected-record-fields"]["properties"]["fieldNames"]
    assert '"Name"' in description["description"] and '"Email"' in description["description"]
    assert 'The selected record belongs to the "Customers" collection.' in request.system
    assert request.messages[-1]["content"] == "**Request**: Do something with the record"


def test_the_ai_chooses_a_field_and_its_value(
    ai: Executor, model: FakeModel, agent: FakeAgent
) -> None:
    model.answer(
        "update-record-field", {"input": {"fieldName": "Tier", "value": "bronze", "reasoning": "r"}}
    )
    assert ai.run(1, [record_step(UPDATE, "fully-automated")]) == SUCCESS
    assert agent.updates[0].attributes == {"tier": "bronze"}
    schema = model.requests[0].tool_schemas["update-record-field"]
    variants = schema["properties"]["input"]["anyOf"]
    tier = next(v for v in variants if v["properties"]["fieldName"]["const"] == "Tier")
    assert tier["properties"]["value"] == {
        "anyOf": [{"type": "string", "enum": ["bronze", "silver", "gold"]}, {"type": "null"}]
    }


def test_an_ai_value_outside_the_field_s_type_is_refused(
    ai: Executor, model: FakeModel, agent: FakeAgent
) -> None:
    model.answer(
        "update-record-field",
        {"input": {"fieldName": "Tier", "value": "platinum", "reasoning": "r"}},
    )
    assert ai.run(1, [record_step(UPDATE, "fully-automated")]) == error(
        "The AI made an unexpected choice. Try rephrasing the step's prompt."
    )
    assert agent.updates == []


def test_the_ai_fills_a_pinned_field_and_the_user_confirms(
    ai: Executor, model: FakeModel, agent: FakeAgent
) -> None:
    model.answer("set-record-field-value", {"reasoning": "downgrade", "value": "silver"})
    step = record_step(UPDATE, "automated-with-confirmation", fieldName="tier")
    assert ai.run(1, [step]) == AWAITING
    assert ai.entry(1)["pendingData"] == {"displayName": "Tier", "name": "tier", "value": "silver"}
    assert ai.trigger(1, {"userConfirmed": True}) == SUCCESS
    assert agent.updates[0].attributes == {"tier": "silver"}


def test_the_ai_chooses_an_action_and_explains_an_approval(
    ai: Executor, model: FakeModel, orchestrator: FakeOrchestrator
) -> None:
    model.answer("select-action", {"actionName": "Archive", "reasoning": "The customer left."})
    assert ai.run(1, [record_step(ACTION, "fully-automated")])["status"] == "success"
    [approval] = orchestrator.approvals.values()
    assert approval["comment"] == "The customer left."
    listing = model.requests[0].tool_schemas["select-action"]["properties"]["actionName"]
    assert "Send invoice (technical name: send-invoice)" in listing["description"]


def test_the_ai_fills_a_form_over_several_passes_then_executes(
    ai: Executor, model: FakeModel, agent: FakeAgent
) -> None:
    model.answer("fill_action_form", {"values": {"amount": 20, "reason": "other"}})
    model.answer("fill_action_form", {"values": {"details": "Box crushed in transit"}})
    step = record_step(ACTION, "fully-automated", actionName="refund")
    step["prompt"] = "Refund 20 EUR: the box arrived crushed"
    assert ai.run(1, [step]) == SUCCESS
    [execution] = agent.executions
    assert execution.values["amount"] == 20
    assert execution.values["details"] == "Box crushed in transit"
    result = ai.entry(1)["executionResult"]
    assert result["submittedBy"] == "ai" and result["submissionOutcome"] == "executed"
    assert result["aiFilledValues"] == [
        {"field": "amount", "value": 20},
        {"field": "reason", "value": "other"},
        {"field": "details", "value": "Box crushed in transit"},
    ]
    second = model.prompts_for("fill_action_form")[1]
    assert "- details (String, required) — hint: Why?" in second.system  # added by the hook


def test_with_confirmation_the_ai_filled_form_waits_for_the_user(
    ai: Executor, model: FakeModel, agent: FakeAgent
) -> None:
    model.answer("fill_action_form", {"values": {"amount": 15, "reason": "late"}})
    model.answer("fill_action_form", {"values": {}})
    step = record_step(ACTION, "automated-with-confirmation", actionName="refund")
    assert ai.run(1, [step]) == AWAITING
    form = ai.entry(1)["pendingData"]["form"]
    assert form["aiFilledValues"] == [
        {"field": "amount", "value": 15},
        {"field": "reason", "value": "late"},
    ]
    assert next(f for f in form["fields"] if f["name"] == "amount")["value"] == 15
    assert agent.executions == []


def test_the_ai_chooses_a_relation_and_ranks_its_records(ai: Executor, model: FakeModel) -> None:
    choose_relation(model, "→ Orders", "orders")
    model.answer("select-fields", {"fieldNames": ["Reference", "Amount"]})
    model.answer(
        "select-record-by-content", {"recordIndex": 2, "confident": True, "reasoning": "biggest"}
    )
    assert ai.run(1, [record_step(LOAD, "fully-automated")]) == SUCCESS
    assert ai.entry(1)["executionResult"]["record"] == {
        "collectionName": "orders",
        "recordId": [103],
        "stepIndex": 0,
    }
    ranking = model.prompts_for("select-record-by-content")[0]
    assert '[2] {"Reference":"A-103","Amount":560}' in ranking.system
    assert "answer -1" in ranking.system
    labels = model.requests[0].tool_schemas["select-relation-to-follow"]["properties"]["relation"]
    assert "Step 0 - Customers #1 → Company (→ Companies)" in labels["enum"]


def test_no_fitting_record_is_suggested_as_none(ai: Executor, model: FakeModel) -> None:
    model.answer("select-fields", {"fieldNames": ["Reference"]})
    model.answer(
        "select-record-by-content", {"recordIndex": -1, "confident": True, "reasoning": "x"}
    )
    step = record_step(LOAD, "automated-with-confirmation", relationName="orders")
    assert ai.run(1, [step]) == AWAITING
    pending = ai.entry(1)["pendingData"]
    assert pending["suggestNoRecord"] is True and "suggestedRecord" not in pending


def test_an_unsure_ranking_waits_for_the_user(ai: Executor, model: FakeModel) -> None:
    model.answer("select-fields", {"fieldNames": ["Reference"]})
    model.answer(
        "select-record-by-content", {"recordIndex": 0, "confident": False, "reasoning": "?"}
    )
    step = record_step(LOAD, "fully-automated", relationName="orders")
    assert ai.run(1, [step]) == AWAITING
    assert ai.entry(1)["pendingData"]["suggestedRecord"]["referenceFieldValue"] == "A-101"


def test_a_failing_ai_leaves_the_related_record_to_the_user(ai: Executor, model: FakeModel) -> None:
    model.no_tool_call()
    step = record_step(LOAD, "fully-automated", relationName="orders")
    assert ai.run(1, [step]) == AWAITING
    pending = ai.entry(1)["pendingData"]
    assert len(pending["availableRecordIds"]) == 5 and "suggestNoRecord" not in pending


def test_the_ai_drafts_guidance_from_the_trigger_record_and_history(
    ai: Executor, model: FakeModel, orchestrator: FakeOrchestrator
) -> None:
    model.answer(
        "choose-gateway-option", {"reasoning": "many orders", "question": "VIP?", "option": "Yes"}
    )
    model.answer("submit_guidance_response", {"response": "Offer Ada a loyalty discount."})
    steps = [condition_step(execution_type="fully-automated"), guidance_step("fully-automated")]
    ai.run(1, steps, record_id="1")
    assert ai.outcomes(1) == [{"status": "success", "selectedOption": "Yes"}, SUCCESS]
    assert ai.entry(1, 1)["executionResult"] == {
        "userInput": "Offer Ada a loyalty discount.",
        "generatedByAi": True,
    }
    [request] = model.prompts_for("submit_guidance_response")
    assert "Trigger record — the Customers this workflow is running on:" in request.system
    assert "- Name: Ada Lovelace" in request.system
    assert 'Step "step-0" (index 0):\n  Prompt: Is the customer a VIP?' in request.system
    assert '  Input: {"answer":"Yes","reasoning":"many orders"}' in request.system
    assert request.messages[-1]["content"] == "**Step instructions**: Write a note"
    assert "Ada Lovelace" not in json.dumps(orchestrator.updates())  # no data upstream


def test_with_confirmation_the_ai_draft_waits_and_a_blank_one_is_left_empty(
    ai: Executor, model: FakeModel
) -> None:
    model.answer("submit_guidance_response", {"response": "Call back tomorrow."})
    assert ai.run(1, [guidance_step("automated-with-confirmation")]) == AWAITING
    assert ai.entry(1)["pendingData"] == {"userInput": "Call back tomorrow.", "aiGenerated": True}
    model.answer("submit_guidance_response", {"response": "   "})
    assert ai.run(2, [guidance_step("fully-automated")]) == AWAITING
    assert ai.entry(2)["pendingData"] == {}


FIVE_STEPS = [
    condition_step(execution_type="fully-automated"),
    record_step(LOAD, "fully-automated", title="Find the company"),
    record_step(GET, "fully-automated", title="Read the company"),
    record_step(UPDATE, "fully-automated", title="Mark the company"),
    record_step(ACTION, "fully-automated", title="Invoice the customer"),
]


def script_five_steps(model: FakeModel) -> None:
    """The AI's answers for FIVE_STEPS, one decision after another."""
    model.answer(
        "choose-gateway-option",
        {"reasoning": "Ada is flagged VIP.", "question": "Is the customer a VIP?", "option": "Yes"},
    )
    choose_relation(model, "→ Company", "The company is what the step is about.")
    model.answer("select-record", {"recordIdentifier": "Step 1 - Companies #1"})
    model.answer("read-selected-record-fields", {"fieldNames": ["Name"]})
    model.answer("select-record", {"recordIdentifier": "Step 1 - Companies #1"})
    model.answer(
        "update-record-field",
        {"input": {"fieldName": "Name", "value": "Acme (VIP)", "reasoning": "Flag the account."}},
    )
    model.answer("select-record", {"recordIdentifier": "Step 0 - Customers #1"})
    model.answer("select-action", {"actionName": "Send invoice", "reasoning": "Bill the VIP."})


def test_the_ai_decides_every_step_of_a_five_step_workflow(
    ai: Executor, model: FakeModel, agent: FakeAgent, orchestrator: FakeOrchestrator
) -> None:
    script_five_steps(model)
    assert ai.run(1, FIVE_STEPS, record_id="1") == {"status": "success", "selectedOption": "Yes"}
    assert ai.outcomes(1)[1:] == [SUCCESS] * 4
    assert orchestrator.runs["1"].finished
    assert [u.attributes for u in agent.updates] == [{"name": "Acme (VIP)"}]
    assert [(e.action, e.ids) for e in agent.executions] == [("send-invoice", ["1"])]
    assert model.remaining == 0
    # Later steps see what earlier ones did.
    update_prompt = model.prompts_for("update-record-field")[0].system
    assert "Loaded: customers #1 → [Company] → companies #1 (step 1)" in update_prompt
    assert "Ada is flagged VIP." in update_prompt
    assert "Acme" not in json.dumps(orchestrator.updates())

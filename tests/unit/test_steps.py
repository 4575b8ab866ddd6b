"""The two step types of the core: guidance and condition, on their deterministic paths."""

from __future__ import annotations

from typing import Any

import pytest

from executor.adapters.stores.memory import MemoryRunStore
from executor.domain.outcomes import StepOutcome, StepStatus
from executor.domain.runs import AvailableStepExecution, RecordRef, StepUser, TriggerType
from executor.domain.steps import ExecutionType, OutcomeType, StepDefinition, StepType
from executor.errors import AiModelUnavailable, NoMcpTools, StepStateError, UnsupportedStepType
from executor.steps.base import StepContext
from executor.steps.registry import StepRegistry


def step_of(step_type: StepType, mode: ExecutionType, **definition: Any) -> AvailableStepExecution:
    return AvailableStepExecution(
        run_id="42",
        step_id="the-step",
        step_index=2,
        collection_id="11",
        trigger_type=TriggerType.MANUAL,
        base_record_ref=RecordRef("customers", ["123"], 0),
        definition=StepDefinition(type=step_type, execution_type=mode, **definition),
        previous_steps=(),
        user=StepUser(id=7, email="ada@example.com"),
    )


def execute(
    store: MemoryRunStore, step: AvailableStepExecution, pending_data: Any = None
) -> StepOutcome:
    context = StepContext(step=step, run_store=store, pending_data=pending_data)
    return StepRegistry().build(context).execute()


@pytest.fixture
def store() -> MemoryRunStore:
    return MemoryRunStore()


# --- guidance ----------------------------------------------------------------------------------


def test_manual_guidance_waits_for_the_user_and_stores_nothing(store: MemoryRunStore) -> None:
    outcome = execute(store, step_of(StepType.GUIDANCE, ExecutionType.MANUAL))
    assert outcome == StepOutcome(OutcomeType.GUIDANCE, "the-step", 2, StepStatus.AWAITING_INPUT)
    assert store.get_step_executions("42") == []


@pytest.mark.parametrize("mode", list(ExecutionType))
def test_guidance_input_is_stored_and_succeeds_in_any_mode(
    store: MemoryRunStore, mode: ExecutionType
) -> None:
    outcome = execute(store, step_of(StepType.GUIDANCE, mode), {"userInput": "Called the client"})
    assert outcome.status is StepStatus.SUCCESS
    assert outcome.error is None
    assert store.get_step_executions("42") == [
        {"type": "guidance", "stepIndex": 2, "executionResult": {"userInput": "Called the client"}}
    ]


def test_guidance_without_user_input_stores_an_empty_answer(store: MemoryRunStore) -> None:
    outcome = execute(store, step_of(StepType.GUIDANCE, ExecutionType.MANUAL), {})
    assert outcome.status is StepStatus.SUCCESS
    assert store.get_step_execution("42", 2) == {
        "type": "guidance",
        "stepIndex": 2,
        "executionResult": {"userInput": ""},
    }


@pytest.mark.parametrize(
    "pending", [{"userInput": 3}, {"userInput": None}, {"other": "x"}, "text", [1]]
)
def test_invalid_guidance_input_is_a_step_state_error_and_stores_nothing(
    store: MemoryRunStore, pending: Any
) -> None:
    with pytest.raises(StepStateError):
        execute(store, step_of(StepType.GUIDANCE, ExecutionType.MANUAL), pending)
    assert store.get_step_executions("42") == []


def test_ai_guidance_without_a_model_degrades_to_a_manual_answer(store: MemoryRunStore) -> None:
    step = step_of(StepType.GUIDANCE, ExecutionType.FULLY_AUTOMATED)
    outcome = execute(store, step)
    assert outcome.status is StepStatus.AWAITING_INPUT
    assert store.get_step_execution("42", 2) == {
        "type": "guidance",
        "stepIndex": 2,
        "pendingData": {},
    }
    # Re-dispatched, it replays its state instead of drafting again.
    assert execute(store, step).status is StepStatus.AWAITING_INPUT
    store.save_step_execution(
        "42", {"type": "guidance", "stepIndex": 2, "executionResult": {"userInput": "done"}}
    )
    assert execute(store, step).status is StepStatus.SUCCESS


# --- condition ---------------------------------------------------------------------------------


def condition(mode: ExecutionType = ExecutionType.MANUAL) -> AvailableStepExecution:
    return step_of(StepType.CONDITION, mode, options=("Yes", "No"))


def test_manual_condition_waits_for_the_user_and_stores_nothing(store: MemoryRunStore) -> None:
    outcome = execute(store, condition())
    assert outcome.status is StepStatus.AWAITING_INPUT
    assert outcome.type is OutcomeType.CONDITION
    assert store.get_step_executions("42") == []


@pytest.mark.parametrize("mode", [ExecutionType.MANUAL, ExecutionType.FULLY_AUTOMATED])
def test_the_user_s_option_is_stored_and_reported(
    store: MemoryRunStore, mode: ExecutionType
) -> None:
    outcome = execute(store, condition(mode), {"selectedOption": "No"})
    assert outcome == StepOutcome(
        OutcomeType.CONDITION, "the-step", 2, StepStatus.SUCCESS, selected_option="No"
    )
    assert store.get_step_execution("42", 2) == {
        "type": "condition",
        "stepIndex": 2,
        "executionParams": {"answer": "No", "reasoning": "Selected by user"},
        "executionResult": {"answer": "No"},
    }


@pytest.mark.parametrize(
    "pending",
    [
        {"selectedOption": "Maybe"},
        {"selectedOption": "no"},
        {"selectedOption": 1},
        {},
        {"selectedOption": "Yes", "x": 1},
    ],
)
def test_an_option_that_is_not_offered_is_refused(store: MemoryRunStore, pending: Any) -> None:
    with pytest.raises(StepStateError):
        execute(store, condition(), pending)
    assert store.get_step_executions("42") == []


def test_an_ai_condition_without_a_model_says_the_ai_is_unavailable(store: MemoryRunStore) -> None:
    with pytest.raises(AiModelUnavailable) as raised:
        execute(store, condition(ExecutionType.FULLY_AUTOMATED))
    assert raised.value.user_message == (
        "The AI service is unavailable. Please try again or contact your administrator."
    )


def test_an_mcp_step_without_mcp_servers_configured_has_no_tools(store: MemoryRunStore) -> None:
    with pytest.raises(NoMcpTools) as raised:
        execute(store, step_of(StepType.MCP, ExecutionType.FULLY_AUTOMATED))
    assert raised.value.user_message.startswith("Tools could not be loaded")


def test_a_stored_manual_guidance_answer_is_replayed_not_asked_again(
    store: MemoryRunStore,
) -> None:
    guidance = step_of(StepType.GUIDANCE, ExecutionType.MANUAL)
    execute(store, guidance, {"userInput": "done"})
    assert execute(store, guidance).status is StepStatus.SUCCESS


def test_a_stored_manual_condition_answer_is_replayed_not_asked_again(
    store: MemoryRunStore,
) -> None:
    execute(store, condition(), {"selectedOption": "No"})
    replayed = execute(store, condition())
    assert (replayed.status, replayed.selected_option) == (StepStatus.SUCCESS, "No")


def test_a_registry_without_an_executor_for_a_type_refuses_it_clearly(
    store: MemoryRunStore,
) -> None:
    step = step_of(StepType.GUIDANCE, ExecutionType.MANUAL)
    executor = StepRegistry({}).build(StepContext(step=step, run_store=store))
    with pytest.raises(UnsupportedStepType, match="No executor for"):
        executor.execute()

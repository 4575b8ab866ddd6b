"""The AI paths of every step, through each model wire format, against the fake model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from executor.extension import runner_of
from tests.drivers import Executor
from tests.fakes.model import FakeModel
from tests.fakes.orchestrator import (
    FakeOrchestrator,
    condition_step,
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


def reported(orchestrator: FakeOrchestrator) -> str:
    return json.dumps(orchestrator.updates())


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

"""The AI choosing among several tools (MCP steps): what is checked, what is left to the step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from executor.domain.ai import ChatMessage, ToolCall, ToolDefinition
from executor.domain.steps import ExecutionType, StepType
from executor.errors import InvalidAIResponse
from executor.ports import AiModel
from executor.steps.decisions import AiDecider
from tests.unit.test_steps import step_of


class ScriptedModel(AiModel):
    """An in-memory model port answering one scripted call and keeping what it was offered."""

    def __init__(self, call: ToolCall) -> None:
        self.call = call
        self.offered: list[list[str]] = []

    def invoke(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition], *, user_id: int
    ) -> ToolCall:
        self.offered.append([t.name for t in tools])
        return self.call


TICKET = ToolDefinition(
    "create_ticket",
    "Create a ticket",
    {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}},
)
SEARCH = ToolDefinition("search", "Search", {"type": "object"})


def choose(call: ToolCall, tools: Sequence[ToolDefinition] = (TICKET, SEARCH)) -> ToolCall:
    model = ScriptedModel(call)
    decider = AiDecider(model, step_of(StepType.MCP, ExecutionType.FULLY_AUTOMATED), dict)
    chosen = decider.choose(tools, instructions=["pick"], request="**Request**: go")
    assert model.offered == [[t.name for t in tools]]
    return chosen


def test_the_call_of_an_offered_tool_is_returned_once_its_arguments_fit() -> None:
    assert choose(ToolCall("create_ticket", {"title": "x"})) == ToolCall(
        "create_ticket", {"title": "x"}
    )


def test_arguments_outside_the_chosen_tool_s_schema_are_refused() -> None:
    with pytest.raises(InvalidAIResponse):
        choose(ToolCall("create_ticket", {"title": 3}))


def test_a_call_of_a_tool_not_offered_is_left_to_the_step() -> None:
    assert choose(ToolCall("drop_tables", {})).name == "drop_tables"


def test_an_invalid_published_schema_lets_the_answer_through_unchecked() -> None:
    broken: dict[str, Any] = {"type": "object", "properties": {"title": {"type": 12}}}
    tool = ToolDefinition("odd", "A tool with a broken schema", broken)
    assert choose(ToolCall("odd", {"title": "x"}), [tool]).arguments == {"title": "x"}

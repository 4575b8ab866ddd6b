"""AI decisions: one forced tool call, with the step's context, its validated answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import jsonschema

from executor.domain.ai import ChatMessage, Role, ToolCall, ToolDefinition
from executor.domain.executions import StepExecutionData
from executor.domain.runs import AvailableStepExecution
from executor.errors import InvalidAIResponse
from executor.ports import AiModel
from executor.steps.history import summarize

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _validate(arguments: dict[str, Any], tool: ToolDefinition) -> None:
    try:
        jsonschema.validate(arguments, tool.parameters)
    except jsonschema.ValidationError as error:
        raise InvalidAIResponse(
            f"The {tool.name} answer breaks its schema at {list(error.absolute_path)}: "
            f"{error.validator}"
        ) from error
    except jsonschema.SchemaError:
        # A schema published by an MCP server that is not valid JSON Schema: the server checks
        # its own input anyway, so the answer goes through unchecked rather than failing here.
        log.warning("Tool %s publishes an invalid input schema; answer not checked", tool.name)


class AiDecider:
    """Asks the model for one decision of one step, and refuses answers outside the tool's schema
    (the model is not trusted to honour it)."""

    def __init__(
        self,
        model: AiModel,
        step: AvailableStepExecution,
        entries: Callable[[], dict[int, StepExecutionData]],
        *,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._model = model
        self._step = step
        self._entries = entries
        self._now = now

    def decide(
        self,
        tool: ToolDefinition,
        *,
        instructions: Sequence[str],
        request: str,
        with_history: bool = True,
        preamble: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The validated arguments of the model's call of ``tool``.

        System messages go: the step's context, ``preamble``, the previous steps, then
        ``instructions``; ``request`` is the one user message.
        """
        messages = self._messages(instructions, request, with_history, preamble)
        call = self._model.invoke(messages, [tool], user_id=self._step.user.id)
        if call.name != tool.name:
            raise InvalidAIResponse(f"The model called {call.name!r} instead of {tool.name!r}")
        _validate(call.arguments, tool)
        return call.arguments

    def choose(
        self, tools: Sequence[ToolDefinition], *, instructions: Sequence[str], request: str
    ) -> ToolCall:
        """The model's call of one of ``tools`` (forced to call one of them).

        A call of a tool that was not offered is returned as is: what that means is the
        caller's to say. The arguments of an offered tool are checked against its schema.
        """
        messages = self._messages(instructions, request, True, ())
        call = self._model.invoke(messages, list(tools), user_id=self._step.user.id)
        offered = next((t for t in tools if t.name == call.name), None)
        if offered is not None:
            _validate(call.arguments, offered)
        return call

    def _messages(
        self,
        instructions: Sequence[str],
        request: str,
        with_history: bool,
        preamble: Sequence[str],
    ) -> list[ChatMessage]:
        messages = [ChatMessage(Role.SYSTEM, self.context_message())]
        messages.extend(ChatMessage(Role.SYSTEM, text) for text in preamble)
        if with_history and self._step.previous_steps:
            messages.append(ChatMessage(Role.SYSTEM, self.history_message()))
        messages.extend(ChatMessage(Role.SYSTEM, text) for text in instructions)
        messages.append(ChatMessage(Role.USER, request))
        return messages

    def context_message(self) -> str:
        user = self._step.user
        definition = self._step.definition
        stamp = self._now().astimezone(UTC).isoformat(timespec="milliseconds")
        lines = [
            f"Step executed by: {user.first_name} {user.last_name} ({user.email}, id: {user.id})",
            f"Role: {user.role} | Team: {user.team}",
            f"Current date and time: {stamp.replace('+00:00', 'Z')} (UTC)",
        ]
        if not (definition.prompt or "").strip() and definition.title:
            lines.append(f'Step title: "{definition.title}"')
        return "\n".join(lines)

    def history_message(self) -> str:
        entries = self._entries()
        return "\n\n".join(summarize(p, entries) for p in self._step.previous_steps)

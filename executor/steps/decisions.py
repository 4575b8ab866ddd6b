"""AI decisions: one forced tool call, with the step's context, its validated answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import jsonschema

from executor.domain.ai import ChatMessage, Role, ToolDefinition
from executor.domain.executions import StepExecutionData
from executor.domain.runs import AvailableStepExecution
from executor.errors import InvalidAIResponse
from executor.ports import AiModel
from executor.steps.history import summarize


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
        messages = [ChatMessage(Role.SYSTEM, self.context_message())]
        messages.extend(ChatMessage(Role.SYSTEM, text) for text in preamble)
        if with_history and self._step.previous_steps:
            messages.append(ChatMessage(Role.SYSTEM, self.history_message()))
        messages.extend(ChatMessage(Role.SYSTEM, text) for text in instructions)
        messages.append(ChatMessage(Role.USER, request))
        call = self._model.invoke(messages, [tool], user_id=self._step.user.id)
        if call.name != tool.name:
            raise InvalidAIResponse(f"The model called {call.name!r} instead of {tool.name!r}")
        try:
            jsonschema.validate(call.arguments, tool.parameters)
        except jsonschema.ValidationError as error:
            raise InvalidAIResponse(
                f"The {tool.name} answer breaks its schema at {list(error.absolute_path)}: "
                f"{error.validator}"
            ) from error
        return call.arguments

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

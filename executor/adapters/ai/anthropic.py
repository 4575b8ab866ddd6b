"""Anthropic Messages with tools (protocol §8)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from executor.adapters.ai.base import HttpChatModel, parse_arguments, split_system
from executor.domain.ai import ChatMessage, ToolCall, ToolDefinition
from executor.errors import MissingToolCall

ANTHROPIC_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
MAX_TOKENS = 4096


class AnthropicModel(HttpChatModel):
    def __init__(
        self,
        model: str,
        api_key: str,
        *,
        invoke_timeout_s: float,
        base_url: str = ANTHROPIC_URL,
    ) -> None:
        super().__init__(
            base_url,
            headers={"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION},
            invoke_timeout_s=invoke_timeout_s,
        )
        self._model = model

    def invoke(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition], *, user_id: int
    ) -> ToolCall:
        system, rest = split_system(messages)  # Anthropic takes one system prompt, apart
        body: dict[str, Any] = {
            "model": self._model,
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": m.role.value, "content": m.content} for m in rest],
            "tools": [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ],
            "tool_choice": {"type": "any"},
        }
        if system:
            body["system"] = system
        return _first_tool_use(self._post("/v1/messages", body))


def _first_tool_use(answer: Any) -> ToolCall:
    blocks = answer.get("content") if isinstance(answer, dict) else None
    for block in blocks if isinstance(blocks, list) else ():
        if isinstance(block, dict) and block.get("type") == "tool_use":
            if not isinstance(block.get("name"), str):
                raise MissingToolCall("The tool use names no tool")
            return ToolCall(block["name"], parse_arguments(block.get("input")))
    raise MissingToolCall("The answer has no tool use")

"""OpenAI-compatible Chat Completions: OpenAI, local servers speaking its API, and the Forest
server's AI proxy (protocol §8)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from executor.adapters.ai.base import HttpChatModel, parse_arguments, split_system
from executor.domain.ai import ChatMessage, ToolCall, ToolDefinition
from executor.errors import MissingToolCall

OPENAI_URL = "https://api.openai.com/v1"
FOREST_PROXY_PATH = "/liana/v1/ai-proxy"
FOREST_PROXY_MODEL = "gpt-4.1"  # a placeholder: the Forest server chooses the real model


def chat_completions_body(
    model: str, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition]
) -> dict[str, Any]:
    system, rest = split_system(messages)
    wire_messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": m.role.value, "content": m.content} for m in rest
    ]
    return {
        "model": model,
        "messages": wire_messages,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in tools
        ],
        "tool_choice": "required",
    }


def first_tool_call(answer: Any) -> ToolCall:
    """``choices[0].message.tool_calls[0]``, its JSON-string arguments parsed."""
    try:
        message = answer["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise MissingToolCall("The answer has no message") from None
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not calls:
        raise MissingToolCall("The answer has no tool call")
    function = calls[0].get("function") if isinstance(calls[0], dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise MissingToolCall("The tool call names no function")
    return ToolCall(function["name"], parse_arguments(function.get("arguments")))


class OpenAiChatModel(HttpChatModel):
    """Chat Completions at ``{base_url}/chat/completions`` with a bearer API key."""

    def __init__(
        self,
        model: str,
        api_key: str,
        *,
        invoke_timeout_s: float,
        base_url: str = OPENAI_URL,
    ) -> None:
        super().__init__(
            base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            invoke_timeout_s=invoke_timeout_s,
        )
        self._model = model

    def invoke(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition], *, user_id: int
    ) -> ToolCall:
        body = chat_completions_body(self._model, messages, tools)
        return first_tool_call(self._post("/chat/completions", body))


class ForestProxyModel(HttpChatModel):
    """The Forest server's AI proxy: Chat Completions authenticated with the environment secret,
    attributed to the step's user, never with an API key of ours."""

    def __init__(
        self,
        forest_server_url: str,
        env_secret: str,
        *,
        invoke_timeout_s: float,
    ) -> None:
        super().__init__(
            forest_server_url,
            headers={"forest-secret-key": env_secret},
            invoke_timeout_s=invoke_timeout_s,
        )

    def invoke(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition], *, user_id: int
    ) -> ToolCall:
        body = chat_completions_body(FOREST_PROXY_MODEL, messages, tools)
        answer = self._post(FOREST_PROXY_PATH, body, headers={"user-id": str(user_id)})
        return first_tool_call(answer)

"""What an AI decision is made of: messages, the tools offered, and the one tool call chosen."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Role(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ToolDefinition:
    """A tool the model may call: its arguments are described by a JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCall:
    """The model's decision: which tool, with which (already validated) arguments."""

    name: str
    arguments: dict[str, Any]

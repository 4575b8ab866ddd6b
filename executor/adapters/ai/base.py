"""What the chat-model adapters share: message preparation, the invocation deadline, retries."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from executor.adapters.http import TRANSIENT_STATUSES, HttpError, JsonHttpClient
from executor.domain.ai import ChatMessage, Role, ToolCall, ToolDefinition
from executor.errors import (
    AiInvokeTimeout,
    AiModelPortError,
    InvalidAiRequest,
    MalformedToolCall,
)
from executor.ports import AiModel

log = logging.getLogger(__name__)

MAX_RETRIES = 2  # transient provider errors, inside the invocation deadline


def split_system(messages: Sequence[ChatMessage]) -> tuple[str | None, list[ChatMessage]]:
    """The leading system messages merged into one prompt (some providers take only one), and
    the rest. A system message after another kind is a request the executor must not send."""
    system: list[str] = []
    rest: list[ChatMessage] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            if rest:
                raise InvalidAiRequest("A system message follows a non-system message")
            system.append(message.content)
        else:
            rest.append(message)
    return ("\n\n".join(system) if system else None), rest


def parse_arguments(raw: Any) -> dict[str, Any]:
    """Tool-call arguments as an object; missing or unparsable ones are a malformed call."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise MalformedToolCall("The tool call's arguments are not JSON") from None
    if not isinstance(raw, dict):
        raise MalformedToolCall("The tool call has no arguments object")
    return raw


class HttpChatModel(AiModel):
    """A chat model behind an HTTP API, invoked under a deadline with bounded retries."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        invoke_timeout_s: float,
        retry_pause_s: float = 0.2,
    ) -> None:
        self._http = JsonHttpClient(base_url, headers=headers, timeout_s=invoke_timeout_s)
        self._invoke_timeout_s = invoke_timeout_s
        self._retry_pause_s = retry_pause_s
        self._stopping = threading.Event()  # wakes retry pauses on close

    def close(self) -> None:
        self._stopping.set()
        self._http.close()

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """POST under the invocation deadline; transient failures are retried (up to twice) while
        time remains. Running out of time is *AiInvokeTimeout*, whatever the client was doing."""
        deadline = time.monotonic() + self._invoke_timeout_s
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AiInvokeTimeout(
                    f"No answer from the AI provider in {self._invoke_timeout_s}s"
                )
            try:
                return self._http.request(
                    "POST",
                    path,
                    operation="AI invocation",
                    json_body=body,
                    headers=headers,
                    timeout_s=remaining,
                )
            except HttpError as error:
                if error.status == 408 and deadline - time.monotonic() <= 0.05:
                    raise AiInvokeTimeout(
                        f"No answer from the AI provider in {self._invoke_timeout_s}s"
                    ) from error
                transient = error.status is None or error.status in TRANSIENT_STATUSES
                if not transient or attempt >= MAX_RETRIES:
                    raise AiModelPortError(
                        f"AI provider error: {error}", status=error.status
                    ) from error
                attempt += 1
                pause = min(
                    self._retry_pause_s * attempt * random.uniform(0.5, 1.5),
                    max(0.0, deadline - time.monotonic()),
                )
                log.warning('"AI invocation" failed, retrying: %s', error)
                if self._stopping.wait(pause):
                    raise AiModelPortError("The AI client was closed") from error


class FailingModel(AiModel):
    """``FORCE_AI_ERROR``: every invocation fails (development only)."""

    def invoke(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition], *, user_id: int
    ) -> ToolCall:
        raise AiModelPortError("FORCE_AI_ERROR is set: every AI call fails")

"""The fake orchestrator: the sandbox orchestrator (``executor.sandbox.orchestrator``, the one
implementation of the protocol) plus what only tests need — failures, delays, a freeze, answers
replaced on demand, and the Forest server's AI proxy and agent-facing routes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from executor.sandbox.orchestrator import (
    API,
    RecordedRequest,
    SandboxOrchestrator,
    ScriptedRun,
    _awaiting,
    _json,
)

__all__ = [
    "API",
    "ENV_SECRET",
    "FakeOrchestrator",
    "RecordedRequest",
    "ScriptedRun",
    "_awaiting",
    "_json",
    "condition_step",
    "guidance_step",
    "record_step",
]

ENV_SECRET = "ab" * 32


def guidance_step(execution_type: str = "manual", prompt: str = "Write a note") -> dict[str, Any]:
    return {
        "type": "task",
        "taskType": "guideline",
        "title": "Note",
        "prompt": prompt,
        "executionType": execution_type,
        "automaticCompletion": False,
        "outgoing": [{"stepId": "next", "buttonText": None}],
    }


def condition_step(
    options: tuple[str, ...] = ("Yes", "No"), execution_type: str = "manual"
) -> dict[str, Any]:
    return {
        "type": "condition",
        "title": "Decide",
        "prompt": "Is the customer a VIP?",
        "executionType": execution_type,
        "automaticCompletion": False,
        "outgoing": [{"stepId": f"to-{o}", "buttonText": None, "answer": o} for o in options],
    }


def record_step(
    task_type: str = "get-data",
    execution_type: str = "fully-automated",
    *,
    title: str = "Record step",
    **pre_recorded_args: Any,
) -> dict[str, Any]:
    """A record step (get-data, update-data, trigger-action, load-related-record)."""
    step: dict[str, Any] = {
        "type": "task",
        "taskType": task_type,
        "title": title,
        "prompt": "Do something with the record",
        "executionType": execution_type,
        "automaticCompletion": False,
        "outgoing": [{"stepId": "next", "buttonText": None}],
    }
    if pre_recorded_args:
        step["preRecordedArgs"] = pre_recorded_args
    return step


class FakeOrchestrator(SandboxOrchestrator):
    """The sandbox orchestrator, told to fail (status codes, delays, a freeze) on demand."""

    def __init__(self, *, env_secret: str = ENV_SECRET, auto_chain: bool = True) -> None:
        super().__init__(env_secret=env_secret, auto_chain=auto_chain)
        self._faults: list[tuple[str, int, int]] = []  # (path prefix, status, remaining)
        self._delays: dict[str, float] = {}
        # Replaces the update-step answer when set (e.g. to hand back a bogus next step).
        self.update_answer: Callable[[dict[str, Any], Any], Any] | None = None
        self.access_answer: Any = None  # replaces the access-check body when not None
        self.agent_url = "http://127.0.0.1:9"  # the agent the executor under test talks to
        # Answers a real agent's own Forest-server calls (see tests/fakes/python_agent.py).
        self.agent_side: Any = None
        self.model: Any = None  # a FakeModel answering the AI proxy (tests/fakes/model.py)
        self.frozen = threading.Event()
        self.frozen.set()  # set = answering; clear() freezes every request until set() again

    def start(self) -> FakeOrchestrator:
        super().start()
        return self

    def stop(self) -> None:
        self.frozen.set()
        super().stop()

    def __enter__(self) -> FakeOrchestrator:
        return self.start()

    def fail(self, path_prefix: str, status: int, times: int = 1) -> None:
        """Answer ``status`` to the next ``times`` requests whose path starts with the prefix."""
        with self._changed:
            self._faults.append((path_prefix, status, times))

    def clear_faults(self) -> None:
        """Forget the failures still to inject."""
        with self._changed:
            self._faults.clear()

    def delay(self, path_prefix: str, seconds: float) -> None:
        self._delays[path_prefix] = seconds

    def _intercept(self, request: Request) -> Response | None:
        self.frozen.wait()
        for prefix, seconds in list(self._delays.items()):
            if request.path.startswith(prefix):
                time.sleep(seconds)  # simulates a slow server, not a test synchronisation
        authorized = request.headers.get(
            "forest-secret-key"
        ) == self.env_secret or request.path.startswith(
            ("/api/activity-logs-requests", "/api/action-approvals")
        )
        fault = self._take_fault(request.path) if authorized else None
        if fault is not None:
            return _json({"errors": [{"detail": "injected failure"}]}, fault)
        return None

    def _update_answer(self, body: Any) -> Any:
        answer = super()._update_answer(body)
        if self.update_answer is not None:
            answer = self.update_answer(body, answer)
        return answer

    def _access_answer(self, run_id: str, user_id: int) -> Any:
        if self.access_answer is not None:
            return self.access_answer
        return super()._access_answer(run_id, user_id)

    def _unrouted(self, request: Request) -> Response:
        if self.model is not None:  # the Forest server's AI proxy
            proxied: Response | None = self.model.handle(request)
            if proxied is not None:
                return proxied
        if self.agent_side is not None:  # what a real agent asks the Forest server
            served: Response | None = self.agent_side.handle(request)
            if served is not None:
                return served
        return super()._unrouted(request)

    def _take_fault(self, path: str) -> int | None:
        with self._changed:
            for i, (prefix, status, remaining) in enumerate(self._faults):
                if path.startswith(prefix):
                    if remaining <= 1:
                        del self._faults[i]
                    else:
                        self._faults[i] = (prefix, status, remaining - 1)
                    return status
        return None

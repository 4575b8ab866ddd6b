"""Scripted step executors: record what they were given, then succeed, fail, raise or block."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from executor.domain.outcomes import StepOutcome
from executor.steps.base import StepContext, StepExecutor
from executor.steps.registry import StepRegistry


@dataclass
class StepCall:
    run_id: str
    step_index: int
    pending_data: Any


@dataclass
class ScriptedSteps(StepRegistry):
    """A registry whose every step runs ``behaviour`` (default: succeed at once).

    ``gate``, when cleared, holds every step until it is set again; ``entered`` is set each time a
    step starts, so a test can wait for a step to be running.
    """

    behaviour: Callable[[StepExecutor], StepOutcome] | None = None
    calls: list[StepCall] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__({})
        self.gate.set()
        self._lock = threading.Lock()

    def build(self, context: StepContext) -> StepExecutor:
        return _ScriptedStep(context, self)

    def record(self, context: StepContext) -> None:
        with self._lock:
            self.calls.append(
                StepCall(context.step.run_id, context.step.step_index, context.pending_data)
            )
        self.entered.set()

    def executed(self, run_id: str | None = None) -> list[int]:
        with self._lock:
            return [c.step_index for c in self.calls if run_id is None or c.run_id == run_id]


class _ScriptedStep(StepExecutor):
    def __init__(self, context: StepContext, script: ScriptedSteps) -> None:
        super().__init__(context)
        self._script = script

    def execute(self) -> StepOutcome:
        self._script.record(self.context)
        self._script.gate.wait()
        if self._script.behaviour is not None:
            return self._script.behaviour(self)
        return self.success()

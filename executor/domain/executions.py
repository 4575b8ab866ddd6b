"""Run-store entries: the private per-step state the executor keeps (protocol §2.10).

An entry is a JSON document whose shape depends on its ``type``; it is stored and served exactly as
the protocol shapes it, so it is kept as a mapping validated by ``executor.schemas.store`` at every
boundary. The TypedDicts below name the shapes that step executors write.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

StepExecutionData = dict[str, Any]


class ConditionParams(TypedDict):
    answer: str | None
    reasoning: NotRequired[str]


class ConditionEntry(TypedDict):
    type: str
    stepIndex: int
    executionParams: ConditionParams
    executionResult: NotRequired[dict[str, str]]


class GuidancePending(TypedDict, total=False):
    userInput: str
    aiGenerated: bool


class GuidanceResult(TypedDict, total=False):
    userInput: str
    generatedByAi: bool


class GuidanceEntry(TypedDict):
    type: str
    stepIndex: int
    pendingData: NotRequired[GuidancePending]
    executionResult: NotRequired[GuidanceResult]

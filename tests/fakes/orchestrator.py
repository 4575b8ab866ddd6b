"""The fake orchestrator: the sandbox orchestrator's protocol code (``executor.sandbox``), kept
under its test name so one implementation of the protocol serves the tests and the sandbox."""

from executor.sandbox.orchestrator import (
    API,
    ENV_SECRET,
    FakeOrchestrator,
    RecordedRequest,
    ScriptedRun,
    _awaiting,
    _json,
    condition_step,
    guidance_step,
    record_step,
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

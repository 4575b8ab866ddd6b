"""The runner: lifecycle, poll loop, triggers, chains, drain, and the server it may own."""

from executor.runner.runner import Runner, RunnerState

__all__ = ["Runner", "RunnerState"]

"""The executor's own version: sent as X-Executor-Version and to the orchestrator."""

__version__ = "0.1.0"

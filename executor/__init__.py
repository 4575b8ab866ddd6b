"""The workflow executor: runs Forest Admin workflow steps on the customer's infrastructure."""

from executor.app import create_app
from executor.extension import WorkflowExecutor, runner_of
from executor.runner import Runner
from executor.version import __version__

__all__ = ["Runner", "WorkflowExecutor", "__version__", "create_app", "runner_of"]

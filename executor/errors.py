"""Error hierarchy of the executor.

Every error carries a *user message* (one of the fixed, data-free messages of the protocol's error
catalogue, safe to show to a user or report upstream) and a *category* that the HTTP layer maps to a
status code. Technical details (ids, causes) go in the exception's ``str()`` and only ever reach
logs.
"""

from __future__ import annotations

import enum


class Category(enum.Enum):
    """How an error surfaces at the HTTP edge."""

    INVALID = "invalid"  # 400
    NOT_FOUND = "not-found"  # 404
    FORBIDDEN = "forbidden"  # 403
    UNAVAILABLE = "unavailable"  # 503
    INTERNAL = "internal"  # 500, logged with its traceback


class ExecutorError(Exception):
    """Base of every error the executor raises on purpose."""

    user_message = "An unexpected error occurred."
    category = Category.INVALID

    def __init__(self, technical_message: str | None = None, *, user_message: str | None = None):
        super().__init__(technical_message or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class ConfigurationError(ExecutorError):
    """A setting is missing or invalid; start-up stops with this message."""

    def __init__(self, message: str):
        super().__init__(message, user_message=message)


# --- Run dispatch -------------------------------------------------------------------------------


class InvalidStepDefinition(ExecutorError):
    user_message = "The workflow step configuration is invalid. Please check the workflow designer."


class UnsupportedStepType(ExecutorError):
    user_message = "This step type is not yet supported."


class DomainValidation(ExecutorError):
    user_message = (
        "Internal validation error occurred while preparing the step. Please contact support."
    )


class StepDefinitionShapeError(ExecutorError):
    """A step definition fails the normalized-form checks (wrong mode, bad preRecordedArgs, ...).

    Per the protocol this is *not* a malformed run: a poll skips the run with a log and a trigger
    answers 500.
    """

    category = Category.INTERNAL


class RecordIdSerialization(ExecutorError):
    user_message = "A record identifier contains an unsupported character and cannot be processed."


class RunNotFound(ExecutorError):
    user_message = "Run not found or unavailable"
    category = Category.NOT_FOUND


class UserMismatch(ExecutorError):
    user_message = "You are not authorized to access this run."
    category = Category.FORBIDDEN


class RunAlreadyInFlight(ExecutorError):
    user_message = "This step is already running."


class ExecutorBusy(ExecutorError):
    """Every worker is busy and the backlog is full; the caller should retry later."""

    user_message = "The executor is busy. Please try again in a moment."
    category = Category.UNAVAILABLE


# --- Ports --------------------------------------------------------------------------------------


class WorkflowPortError(ExecutorError):
    """The orchestrator could not be reached or answered with an error."""

    user_message = (
        "This step couldn't be completed. Please try again, and contact your administrator if the "
        "problem continues."
    )
    category = Category.UNAVAILABLE

    def __init__(self, technical_message: str, *, status: int | None = None):
        super().__init__(technical_message)
        self.status = status


class RunStoreError(ExecutorError):
    user_message = "The step state could not be accessed. Please retry."
    category = Category.UNAVAILABLE


# --- Step execution -----------------------------------------------------------------------------


class StepStateError(ExecutorError):
    user_message = "An unexpected error occurred while processing this step."


class StepTimeout(ExecutorError):
    user_message = (
        "The step took too long to complete. Please try again, or contact your administrator if "
        "the problem persists."
    )


class ConditionUndecided(ExecutorError):
    user_message = "The AI couldn't decide. Try rephrasing the step's prompt."


class AiModelUnavailable(ExecutorError):
    """No AI model can serve this step (none configured yet, or the provider is down)."""

    user_message = "The AI service is unavailable. Please try again or contact your administrator."


# Messages that are not errors of their own but appear on the wire (protocol §7.9).
UNEXPECTED_ERROR_MESSAGE = "An unexpected error occurred."
NON_DOMAIN_STEP_ERROR_MESSAGE = "Unexpected error during step execution"
UNKNOWN_ERROR_MESSAGE = "Unknown error"


class MalformedRunError(ExecutorError):
    """A claimed run cannot be executed; it was (or must be) reported as an error outcome."""

    def __init__(self, run: object, user_message: str, technical_message: str):
        super().__init__(technical_message, user_message=user_message)
        self.run = run

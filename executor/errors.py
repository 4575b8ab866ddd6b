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

    def __init__(self, message: str, *, problems: list[str] | None = None):
        super().__init__(message, user_message=message)
        self.problems = list(problems or [message])  # one per bad setting, for `check`


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


# --- Record steps -------------------------------------------------------------------------------


class AgentPortError(ExecutorError):
    """The agent could not be reached or answered with an error."""

    user_message = "An error occurred while accessing your data. Please try again."

    def __init__(self, technical_message: str, *, status: int | None = None):
        super().__init__(technical_message)
        self.status = status


class AgentProbeError(ExecutorError):
    """The agent did not answer the start-up probe; the runner does not start."""

    category = Category.UNAVAILABLE

    def __init__(self, message: str):
        super().__init__(message, user_message=message)


class RecordNotFound(ExecutorError):
    user_message = "The record no longer exists. It may have been deleted."


class NoRecords(ExecutorError):
    user_message = "No records available"


class NoReadableFields(ExecutorError):
    user_message = "This record type has no readable fields configured in Forest Admin."


class NoResolvedFields(ExecutorError):
    user_message = (
        "The AI selected fields that don't exist on this record. Try rephrasing the step's prompt."
    )


class NoWritableFields(ExecutorError):
    user_message = "This record type has no editable fields configured in Forest Admin."


class FieldNotFound(ExecutorError):
    user_message = (
        "The AI selected a field that doesn't exist on this record. Try rephrasing the step's "
        "prompt."
    )


class FieldTypeMissing(ExecutorError):
    user_message = (
        "This field can't be updated because its type is missing from the schema. Contact your "
        "administrator if the problem persists."
    )


class NoActions(ExecutorError):
    user_message = "No actions are available on this record."


class ActionNotFound(ExecutorError):
    user_message = (
        "The AI selected an action that doesn't exist on this record. Try rephrasing the step's "
        "prompt."
    )


class ActionFormValidation(ExecutorError):
    user_message = "The submitted form values were rejected. Please review the form and try again."


class ActionRequiresApproval(ExecutorError):
    user_message = "This action requires an approval. Please review and submit it manually."


class ApprovalRequestCreation(ExecutorError):
    user_message = (
        "This action requires an approval, but the approval request could not be created. "
        "Please retry."
    )


class NoRelationshipFields(ExecutorError):
    user_message = "This record type has no relations configured in Forest Admin."


class RelationNotFound(ExecutorError):
    user_message = (
        "The AI selected a relation that doesn't exist on this record. Try rephrasing the step's "
        "prompt."
    )


class RelatedRecordNotFound(ExecutorError):
    user_message = "The related record could not be found. It may have been deleted."


class SourceRecordMissing(ExecutorError):
    def __init__(self, technical_message: str, *, source_title: str | None):
        if source_title:
            message = (
                f'This step uses "{source_title}" as its source, but that step didn\'t load any '
                "record."
            )
        else:
            message = (
                "This step uses its source step as its source, but that step didn't load any "
                "record."
            )
        super().__init__(technical_message, user_message=message)


class InvalidPreRecordedArgs(ExecutorError):
    user_message = "The pre-configured step parameters are invalid"


class ActivityLogCreation(ExecutorError):
    user_message = (
        "Could not record this step in the audit log. Please try again, or contact your "
        "administrator if the problem persists."
    )


class InvalidAIResponse(ExecutorError):
    user_message = "The AI made an unexpected choice. Try rephrasing the step's prompt."


# --- AI -----------------------------------------------------------------------------------------


class MissingToolCall(ExecutorError):
    user_message = "The AI couldn't decide what to do. Try rephrasing the step's prompt."


class MalformedToolCall(ExecutorError):
    user_message = "The AI returned an unexpected response. Try rephrasing the step's prompt."


class InvalidAiRequest(ExecutorError):
    user_message = "Step configuration error — please contact your administrator."


class AiInvokeTimeout(ExecutorError):
    user_message = (
        "The AI provider did not respond in time. Please try again, or contact your "
        "administrator if the problem persists."
    )


class AiModelPortError(AiModelUnavailable):
    """The provider answered with an error or could not be reached."""

    def __init__(self, technical_message: str, *, status: int | None = None):
        super().__init__(technical_message)
        self.status = status


# --- MCP OAuth credentials (protocol §10.3, §10.4) ----------------------------------------------


class EncryptionKeyMissing(ExecutorError):
    """``FOREST_EXECUTOR_ENCRYPTION_KEY`` is unset, so credentials can be neither stored nor read.

    The HTTP edge answers the protocol's typed ``503 {"code": "executor_encryption_key_missing"}``;
    a step that meets it fails like any non-domain error (the reference throws a plain error).
    """

    code = "executor_encryption_key_missing"
    user_message = NON_DOMAIN_STEP_ERROR_MESSAGE
    category = Category.UNAVAILABLE


class OAuthRefreshError(ExecutorError):
    """The token endpoint could not be used: unreachable, non-JSON, an unexpected status, no
    access token. Not a re-consent case (those are ``ReauthNeeded``)."""

    user_message = "Could not refresh the connection to this tool. Please try again."
    category = Category.UNAVAILABLE


class InvalidTokenEndpoint(ExecutorError):
    """A stored token endpoint fails the safety check (it is refused at deposit too)."""

    user_message = (
        "This tool is misconfigured (invalid token endpoint). Contact your administrator."
    )


class OAuthReauthRequired(ExecutorError):
    """The user must reconnect the tool (shown when the step does not turn it into a pause)."""

    user_message = (
        "This tool needs to be reconnected before it can run. Please re-authorize it and try again."
    )


class CredentialStoreError(ExecutorError):
    """The OAuth credential store failed; an HTTP route answers 500 (protocol §5.7)."""

    category = Category.INTERNAL


# --- MCP ----------------------------------------------------------------------------------------


class NoMcpTools(ExecutorError):
    user_message = (
        "Tools could not be loaded for the targeted server. Please try again, or contact your "
        "administrator if the problem persists."
    )


class McpToolNotFound(ExecutorError):
    user_message = "The AI selected a tool that doesn't exist. Try rephrasing the step's prompt."


class McpToolInvocation(ExecutorError):
    user_message = "The tool failed to execute. Please try again or contact your administrator."

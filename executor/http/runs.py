"""The ``runs`` blueprint: what the front reads and triggers (protocol §5.5, §5.6)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from executor.errors import RunNotFound, WorkflowPortError
from executor.http.auth import authenticate
from executor.http.errors import ApiError, register_error_handlers
from executor.http.route_docs import documented
from executor.schemas.api import RunStepsResponseSchema, TriggerRequestSchema, TriggerResponseSchema
from executor.schemas.wire import step_execution_to_wire
from executor.version import __version__

log = logging.getLogger(__name__)

EXTENSION_KEY = "workflow_executor"
VERSION_HEADER = "X-Executor-Version"
_RUN_ID = re.compile(r"^[0-9]{1,19}$")  # the orchestrator's run ids are integers

runs = Blueprint("runs", __name__)
_TRIGGER_REQUEST = TriggerRequestSchema()
_TRIGGER_RESPONSE = TriggerResponseSchema()
_STEPS_RESPONSE = RunStepsResponseSchema()


def _executor() -> Any:
    return current_app.extensions[EXTENSION_KEY]


def add_version_header(response: Response) -> Response:
    response.headers[VERSION_HEADER] = __version__
    return response


def limit_body_and_authenticate() -> None:
    """Bound the body, then authenticate; stores the caller's user id in ``g``."""
    settings = _executor().settings
    request.max_content_length = settings.max_request_bytes
    g.executor_user_id = authenticate(request, settings.forest_auth_secret)


runs.before_request(limit_body_and_authenticate)
runs.after_request(add_version_header)
register_error_handlers(runs)


def _checked_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise RunNotFound(f"Run id {run_id[:40]!r} is not a run id")
    return run_id


@runs.get("/runs/<run_id>")
@documented(
    "The run's stored steps",
    response=RunStepsResponseSchema,
    description="Every run-store entry of the run, sorted by step index, record ids pipe-joined "
    "(`[]` for an unknown run), once the orchestrator's access check admits the user.",
    errors={
        403: "The orchestrator's access check did not admit the user: `Forbidden`",
        404: "The run id is not an orchestrator run id (an integer)",
        503: "The access check could not be made (`Service unavailable`) or the run store failed",
    },
    tags=("runs",),
)
def get_run(run_id: str) -> Response:
    run_id = _checked_run_id(run_id)
    executor = _executor()
    try:
        allowed = executor.access.has_access(run_id, g.executor_user_id)
    except WorkflowPortError as error:
        log.warning("Access check failed: %s", error, extra={"run_id": run_id})
        raise ApiError(503, "Service unavailable") from error
    if not allowed:
        raise ApiError(403, "Forbidden")
    entries = executor.services.run_store.get_step_executions(run_id)
    body = {"steps": [step_execution_to_wire(entry) for entry in entries]}
    return jsonify(_STEPS_RESPONSE.dump(body))


@runs.post("/runs/<run_id>/trigger")
@documented(
    "Claim the run's available step and execute it",
    request=TriggerRequestSchema,
    response=TriggerResponseSchema,
    description="Answers as soon as the run is claimed and its chain started; results travel "
    "through the orchestrator. `pendingData` is validated by the step, after the 200.",
    errors={
        400: "Invalid JSON or not an object; the run is already running "
        "(`This step is already running.`); a malformed run",
        403: "The run belongs to another user: `Forbidden`",
        404: "Nothing to claim: `Run not found or unavailable`",
        413: "Request body larger than MAX_REQUEST_BYTES",
        503: "The orchestrator or run store is unavailable, the executor is busy or draining",
    },
    tags=("runs",),
)
def trigger_run(run_id: str) -> Response:
    run_id = _checked_run_id(run_id)
    body = _TRIGGER_REQUEST.load(_json_object_body())
    _executor().runner.trigger(run_id, g.executor_user_id, body["pendingData"])
    return jsonify(_TRIGGER_RESPONSE.dump({"triggered": True}))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity would be stored, then unservable


def _json_object_body() -> dict[str, Any]:
    """The body as a JSON object; an empty body counts as ``{}``."""
    limit = _executor().settings.max_request_bytes
    # One byte of slack: a chunked body is cut at the limit rather than refused, so a body that
    # reaches limit + 1 bytes is known to be too large. A declared length over it is a 413 at once.
    request.max_content_length = limit + 1
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise ApiError(413, "Request body too large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body

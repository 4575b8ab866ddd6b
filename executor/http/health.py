"""``GET /health``: liveness, no authentication (protocol §5.4)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from executor.http.errors import register_error_handlers
from executor.http.route_docs import documented
from executor.http.runs import EXTENSION_KEY, add_version_header
from executor.runner import RunnerState
from executor.schemas.api import HealthResponseSchema

health = Blueprint("health", __name__)
health.after_request(add_version_header)
register_error_handlers(health)
_HEALTH = HealthResponseSchema()
_ALIVE = frozenset({RunnerState.RUNNING, RunnerState.DRAINING})


@health.get("/health")
@documented(
    "Liveness",
    response=HealthResponseSchema,
    authenticated=False,
    description="`running` or `draining` answer 200; `idle` or `stopped` answer 503.",
    status_description="The runner is running or draining",
    extra_responses={
        503: {
            "description": "The runner is idle or stopped",
            "content": {"application/json": {"schema": HealthResponseSchema}},
        }
    },
    tags=("meta",),
)
def get_health() -> Response:
    state = current_app.extensions[EXTENSION_KEY].runner.state
    response = jsonify(_HEALTH.dump({"state": state.value}))
    response.status_code = 200 if state in _ALIVE else 503
    return response

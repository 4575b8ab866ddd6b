"""``GET /metrics`` (Prometheus) and ``GET /ready`` (readiness), beside ``/health``."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from executor.http.errors import error_response, register_error_handlers
from executor.http.runs import EXTENSION_KEY, add_version_header
from executor.monitoring import exposition
from executor.monitoring.readiness import OK, SKIPPED, poll_check, runner_check
from executor.runner import RunnerState
from executor.schemas.api import ReadyResponseSchema

monitoring = Blueprint("monitoring", __name__)
monitoring.after_request(add_version_header)
register_error_handlers(monitoring)
MAX_TOKEN_CHARS = 1024
_READY = ReadyResponseSchema()


@monitoring.get("/metrics")
def get_metrics() -> Response:
    state = current_app.extensions[EXTENSION_KEY]
    token: str | None = state.settings.metrics_token
    if token is not None and not _bearer_matches(token):
        response = error_response(401, "Unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = exposition.render(state.metrics)
    return Response(body, status=200, content_type=content_type)


def _bearer_matches(token: str) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    given = credentials.strip()
    if scheme.lower() != "bearer" or not given or len(given) > MAX_TOKEN_CHARS:
        return False
    # Constant time: the comparison must not tell how much of a guess was right.
    return hmac.compare_digest(given.encode(), token.encode())


@monitoring.get("/ready")
def get_ready() -> Response:
    state = current_app.extensions[EXTENSION_KEY]
    runner = state.runner
    checks = {
        "runner": runner_check(runner),
        # A runner that is not running has closed its store: its check says all there is to say.
        "runStore": state.store_ping.check() if runner.state is RunnerState.RUNNING else SKIPPED,
        "orchestratorPoll": poll_check(runner, state.settings),
    }
    ready = all(value in (OK, SKIPPED) for value in checks.values())
    response = jsonify(_READY.dump({"ready": ready, "checks": checks}))
    response.status_code = 200 if ready else 503
    return response

"""``GET /metrics`` (Prometheus) and ``GET /ready`` (readiness), beside ``/health``."""

from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from executor.http.errors import error_response, register_error_handlers
from executor.http.route_docs import documented
from executor.http.runs import EXTENSION_KEY, add_version_header
from executor.monitoring import exposition
from executor.monitoring.readiness import OK, SKIPPED, poll_check, runner_check
from executor.runner import RunnerState
from executor.schemas.api import ReadyResponseSchema

monitoring = Blueprint("monitoring", __name__)
monitoring.after_request(add_version_header)
register_error_handlers(monitoring)
_READY = ReadyResponseSchema()


@monitoring.get("/metrics")
@documented(
    "Prometheus metrics",
    authenticated=False,
    description="The Prometheus text exposition format (see the README's Monitoring section). "
    "Open unless `METRICS_TOKEN` is set; then `Authorization: Bearer <METRICS_TOKEN>` is needed.",
    extra_responses={
        200: {
            "description": "The metrics of this executor (of every gunicorn worker when merged)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    errors={401: "`METRICS_TOKEN` is set and the request does not carry it: `Unauthorized`"},
    tags=("meta",),
)
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
    if scheme.lower() != "bearer" or not given:
        return False
    # Constant time over digests: the comparison tells neither how much of a guess was right
    # nor, by a length limit, anything about the token (any length of token works).
    return hmac.compare_digest(_digest(given), _digest(token))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@monitoring.get("/ready")
@documented(
    "Readiness",
    response=ReadyResponseSchema,
    authenticated=False,
    description="200 when every check is `ok` or `skipped`: the runner is running, the run store "
    "answers, and the last successful orchestrator poll is recent.",
    status_description="Ready: every check is `ok` or `skipped`",
    extra_responses={
        503: {
            "description": "Not ready: the failing checks say why",
            "content": {"application/json": {"schema": ReadyResponseSchema}},
        }
    },
    tags=("meta",),
)
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

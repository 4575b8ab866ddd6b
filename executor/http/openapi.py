"""``GET /openapi.json``: the OpenAPI 3 document of the executor's own API, no authentication.

**Documenting a route is one decorator on its view**, next to the route itself::

    @runs.post("/runs/<run_id>/trigger")
    @documented(
        "Trigger the run's available step",
        request=TriggerRequestSchema,
        response=TriggerResponseSchema,
        errors={400: "The run is in flight, or malformed", 404: "Nothing to claim"},
    )
    def trigger_run(run_id: str) -> Response: ...

The document is generated from the app's ``url_map``: every rule whose view carries
``@documented`` becomes an operation, with its path (mount prefix included), method and path
parameters taken from the rule, so they cannot drift from the routes; the bodies come from the
marshmallow schemas given. Authenticated operations get the bearer/cookie security and the 401
response, every operation the 500 and the ``X-Executor-Version`` header. The test
``tests/integration/test_openapi.py`` fails when a route of ``create_app()`` has no
``@documented`` (or the document lists a route that does not exist), and validates the document.

Other shapes: ``authenticated=False`` for a public route (``/health``); ``parameters=(...)`` for
query parameters as OpenAPI parameter objects (``{"name": "mcpServerId", "in": "query",
"required": True, "schema": {"type": "string"}}``); ``extra_responses={status: {...}}`` for whole
OpenAPI response objects that replace the generated ones, e.g. a typed error body
(``409 {"awaitingInputReason": …}``) or a non-JSON success (``200`` as ``text/plain`` for
metrics); ``status=204, response=None`` for an empty answer.

The document is built once per app (and script root, for apps served under a ``SCRIPT_NAME``) on
the first request, when every blueprint is registered.
"""

from __future__ import annotations

import re
import threading
import typing as t

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from executor.http.errors import register_error_handlers
from executor.http.route_docs import RouteDoc, documented, route_doc
from executor.http.runs import VERSION_HEADER, add_version_header
from executor.schemas.api import ErrorResponseSchema
from executor.version import __version__

OPENAPI_VERSION = "3.0.3"
_CACHE_KEY = "workflow_executor_openapi"
_RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"sessionCookie": []}]

# The error responses every route may give, by status (protocol §5.3).
_ERROR_DESCRIPTIONS = {
    400: "Bad request: invalid JSON or body, a run in flight or malformed (its user message)",
    401: "Missing, malformed, wrongly signed or expired token: `Unauthorized`",
    403: "Forbidden (opaque: never the reason)",
    404: "Not found",
    405: "Method not allowed on this path (answered after authentication)",
    413: "Request body larger than MAX_REQUEST_BYTES",
    500: "Internal server error (logged with its traceback, never echoed)",
    503: "A dependency (orchestrator, run store) is unavailable, or the executor is busy",
}


def openapi_path(rule: str) -> str:
    """``/runs/<run_id>`` → ``/runs/{runId}`` (the protocol's parameter names are camelCase)."""
    return _RULE_ARGUMENT.sub(lambda match: "{" + _camel(match.group(1)) + "}", rule)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def build_document(app: Flask, server_url: str = "/") -> dict[str, t.Any]:
    """The OpenAPI document of the documented routes of ``app``."""
    spec = APISpec(
        title="Workflow executor",
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={
            "description": (
                "Runs Forest Admin workflow steps on your own infrastructure. Every response "
                'carries `X-Executor-Version`; every error is JSON `{"error": "…"}`. Any '
                "method a path does not list answers 405 after authentication."
            )
        },
        servers=[{"url": server_url}],
    )
    _add_components(spec)
    operations: dict[str, dict[str, t.Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        doc = route_doc(app.view_functions[rule.endpoint])
        if doc is None:
            continue
        path = openapi_path(rule.rule)
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            operations.setdefault(path, {})[method.lower()] = _operation(rule.arguments, doc)
    for path, by_method in operations.items():
        spec.path(path=path, operations=by_method)
    return spec.to_dict()


def _add_components(spec: APISpec) -> None:
    spec.components.schema("Error", schema=ErrorResponseSchema)
    spec.components.header(
        VERSION_HEADER,
        {"description": "The executor's version", "schema": {"type": "string"}},
    )
    spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The user's session token from the agent (HS256, FOREST_AUTH_SECRET, "
            "with `exp` and a positive integer `id`)",
        },
    )
    spec.components.security_scheme(
        "sessionCookie",
        {"type": "apiKey", "in": "cookie", "name": "forest_session_token"},
    )
    for status, description in _ERROR_DESCRIPTIONS.items():
        spec.components.response(f"Error{status}", _error_response(description))


def _headers() -> dict[str, t.Any]:
    return {VERSION_HEADER: {"$ref": f"#/components/headers/{VERSION_HEADER}"}}


def _error_response(description: str) -> dict[str, t.Any]:
    return {
        "description": description,
        "headers": _headers(),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(arguments: t.Iterable[str], doc: RouteDoc) -> dict[str, t.Any]:
    success: dict[str, t.Any] = {"description": doc.status_description, "headers": _headers()}
    if doc.response is not None:
        success["content"] = {"application/json": {"schema": doc.response}}
    responses: dict[str, t.Any] = {str(doc.status): success}
    for status, description in doc.errors.items():
        responses[str(status)] = _error_response(description)
    if doc.authenticated:
        responses.setdefault("401", {"$ref": "#/components/responses/Error401"})
    responses.setdefault("500", {"$ref": "#/components/responses/Error500"})
    for status, extra in doc.extra_responses.items():
        responses[str(status)] = {"headers": _headers(), **extra}
    operation: dict[str, t.Any] = {
        "summary": doc.summary,
        "parameters": [
            {
                "name": _camel(name),
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
            }
            for name in sorted(arguments)
        ]
        + list(doc.parameters),
        "responses": dict(sorted(responses.items())),
        "security": _SECURITY if doc.authenticated else [],
    }
    if doc.description:
        operation["description"] = doc.description
    if doc.tags:
        operation["tags"] = list(doc.tags)
    if doc.request is not None:
        operation["requestBody"] = {
            "required": doc.request_required,
            "content": {"application/json": {"schema": doc.request}},
        }
    return operation


# --- the route ----------------------------------------------------------------------------------

openapi = Blueprint("openapi", __name__)
openapi.after_request(add_version_header)
register_error_handlers(openapi)
MAX_CACHED_DOCUMENTS = 16  # per app: one per mount point in practice
_BUILD_LOCK = threading.Lock()


@openapi.get("/openapi.json")
@documented(
    "This document",
    response={"type": "object", "description": "An OpenAPI 3 document"},
    authenticated=False,
    description="The OpenAPI 3 document of this API, relative to where the executor is mounted.",
    status_description="The OpenAPI document",
    tags=("meta",),
)
def get_openapi() -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return jsonify(document_of(app, request.script_root or "/"))


def document_of(app: Flask, server_url: str = "/") -> dict[str, t.Any]:
    """The app's document, built once per app and server URL."""
    cache: dict[str, dict[str, t.Any]] = app.extensions.setdefault(_CACHE_KEY, {})
    document = cache.get(server_url)
    if document is None:
        with _BUILD_LOCK:
            document = cache.get(server_url)
            if document is None:
                document = build_document(app, server_url)
                # Bounded: a host deriving SCRIPT_NAME from a request header must not make
                # every new prefix a document kept forever.
                if len(cache) < MAX_CACHED_DOCUMENTS:
                    cache[server_url] = document
    return document

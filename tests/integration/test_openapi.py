"""``GET /openapi.json``: the document matches the app's routes both ways, is a valid OpenAPI 3
document, is served without authentication relative to where the executor is mounted, and what
the routes really answer matches what it documents."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from flask import Flask
from openapi_spec_validator import validate

from executor import WorkflowExecutor, runner_of
from executor.http import openapi as openapi_module
from executor.http.route_docs import documented, route_doc
from tests.conftest import auth_header, base_config
from tests.fakes.orchestrator import FakeOrchestrator, guidance_step

VERSION_HEADER = "X-Executor-Version"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _normalized(path: str) -> str:
    """``/runs/<run_id>`` and ``/runs/{runId}`` both become ``/runs/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", re.sub(r"<[^>]*>", "{}", path))


def routes_of(app: Flask) -> set[tuple[str, str]]:
    return {
        (_normalized(rule.rule), method)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - IGNORED_METHODS
    }


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (_normalized(path), method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }


def test_the_document_lists_exactly_the_routes_of_the_app(make_app):
    app = make_app()
    document = app.test_client().get("/openapi.json").get_json()

    undocumented = routes_of(app) - documented_routes(document)
    assert not undocumented, (
        f"routes without @documented (see executor/http/openapi.py): {undocumented}"
    )
    assert documented_routes(document) == routes_of(app)
    validate(document)
    assert {"/health", "/runs/{runId}", "/runs/{runId}/trigger", "/openapi.json"} <= set(
        document["paths"]
    )


def test_every_view_of_the_app_carries_its_documentation(make_app):
    app = make_app()
    missing = [endpoint for endpoint, view in app.view_functions.items() if route_doc(view) is None]
    assert missing == []


def test_an_undocumented_route_is_what_the_sync_check_reports(make_app):
    app = make_app()

    @app.get("/not-documented")
    def not_documented() -> str:
        return "x"

    @app.get("/documented/<some_id>")
    @documented("A documented test route", errors={404: "No such thing"})
    def documented_one(some_id: str) -> str:
        return some_id

    document = openapi_module.build_document(app)
    assert routes_of(app) - documented_routes(document) == {("/not-documented", "GET")}
    operation = document["paths"]["/documented/{someId}"]["get"]
    assert operation["parameters"] == [
        {"name": "someId", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert set(operation["responses"]) == {"200", "401", "404", "500"}
    validate(document)


def test_the_document_describes_security_and_the_one_error_shape(make_app):
    document = make_app().test_client().get("/openapi.json").get_json()

    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["sessionCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "forest_session_token",
    }
    paths = document["paths"]
    assert paths["/health"]["get"]["security"] == []
    assert paths["/openapi.json"]["get"]["security"] == []
    trigger = paths["/runs/{runId}/trigger"]["post"]
    assert trigger["security"] == [{"bearerAuth": []}, {"sessionCookie": []}]
    assert set(trigger["responses"]) == {"200", "400", "401", "403", "404", "413", "500", "503"}
    assert set(paths["/runs/{runId}"]["get"]["responses"]) == {
        "200",
        "401",
        "403",
        "404",
        "500",
        "503",
    }
    assert set(document["components"]["responses"]) >= {"Error405", "Error413"}
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]
    request_schema = trigger["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema == {"$ref": "#/components/schemas/TriggerRequest"}


def test_it_is_served_without_authentication_and_with_the_version_header(make_app):
    client = make_app().test_client()
    response = client.get("/openapi.json", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 200
    assert response.headers[VERSION_HEADER]
    assert response.get_json()["servers"] == [{"url": "/"}]


def test_it_is_built_once_per_app(make_app, monkeypatch):
    builds: list[Flask] = []
    real_build = openapi_module.build_document

    def counting_build(app: Flask, server_url: str = "/") -> dict[str, Any]:
        builds.append(app)
        return real_build(app, server_url)

    monkeypatch.setattr(openapi_module, "build_document", counting_build)
    first, second = make_app(), make_app()
    for app in (first, second, first, second, first):
        assert app.test_client().get("/openapi.json").status_code == 200
    assert builds == [first, second]


def test_the_documents_kept_per_mount_point_are_bounded(make_app, monkeypatch):
    monkeypatch.setattr(openapi_module, "MAX_CACHED_DOCUMENTS", 2)
    app = make_app()
    client = app.test_client()
    for prefix in ("a", "b", "c", "d"):  # e.g. a SCRIPT_NAME taken from a request header
        response = client.get("/openapi.json", environ_overrides={"SCRIPT_NAME": f"/{prefix}"})
        assert response.get_json()["servers"] == [{"url": f"/{prefix}"}]
    assert len(app.extensions[openapi_module._CACHE_KEY]) == 2


def test_under_a_prefix_and_a_script_root_the_paths_and_server_are_right(orchestrator):
    host = Flask("host_app")

    @host.get("/hello")
    def hello() -> str:
        return "hello"

    WorkflowExecutor(host, url_prefix="/executor", config=base_config(orchestrator))
    try:
        client = host.test_client()
        assert client.get("/openapi.json").status_code == 404  # only under the prefix
        document = client.get("/executor/openapi.json").get_json()
        validate(document)
        assert set(document["paths"]) == {
            "/executor/health",
            "/executor/ready",
            "/executor/metrics",
            "/executor/mcp-oauth-credentials",
            "/executor/mcp-oauth-credentials/{mcpServerId}",
            "/executor/list-mcp-tools",
            "/executor/openapi.json",
            "/executor/runs/{runId}",
            "/executor/runs/{runId}/trigger",
        }  # the executor's routes only, never the host's
        assert document["servers"] == [{"url": "/"}]

        behind_proxy = client.get("/executor/openapi.json", base_url="http://localhost/api/")
        assert behind_proxy.get_json()["servers"] == [{"url": "/api"}]
    finally:
        runner_of(host).stop()


# --- what the routes answer matches what the document says ------------------------------------


def _check(document: dict[str, Any], method: str, path: str, response: Any) -> int:
    """The response's status is documented for the operation, and its body fits the schema."""
    operation = document["paths"][path][method]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {path} answered undocumented {status}"
    documented_response = operation["responses"][status]
    if "$ref" in documented_response:
        name = documented_response["$ref"].rsplit("/", 1)[1]
        documented_response = document["components"]["responses"][name]
    assert VERSION_HEADER in documented_response["headers"]
    assert response.headers[VERSION_HEADER]
    schema = documented_response["content"]["application/json"]["schema"]
    # The document is the root so that "#/components/..." references resolve.
    jsonschema.validate(response.get_json(), {**schema, "components": document["components"]})
    return int(response.status_code)


def test_real_answers_fit_the_documented_responses(
    orchestrator: FakeOrchestrator, make_app: Callable[..., Flask]
):
    app = make_app(MAX_REQUEST_BYTES=1024)
    client = app.test_client()
    document = client.get("/openapi.json").get_json()
    orchestrator.add_run(1, steps=[guidance_step()], user_id=7)
    orchestrator.add_run(2, steps=[guidance_step()], user_id=8)

    seen: set[int] = set()

    def check(method: str, path: str, response: Any) -> None:
        seen.add(_check(document, method, path, response))

    run, trigger = "/runs/{runId}", "/runs/{runId}/trigger"
    token = auth_header(7)
    check("get", "/health", client.get("/health"))  # idle: 503
    runner_of(app).start()
    check("get", "/health", client.get("/health"))
    check("get", "/openapi.json", client.get("/openapi.json"))
    check("get", run, client.get("/runs/1"))
    check("get", run, client.get("/runs/1", headers=token))
    check("get", run, client.get("/runs/2", headers=token))
    check("get", run, client.get("/runs/abc", headers=token))
    check("post", trigger, client.post("/runs/1/trigger"))
    check("post", trigger, client.post("/runs/1/trigger", headers=token, data="{"))
    check("post", trigger, client.post("/runs/1/trigger", headers=token, data="x" * 2000))
    check("post", trigger, client.post("/runs/2/trigger", headers=token, json={}))
    check("post", trigger, client.post("/runs/99/trigger", headers=token, json={}))
    check("post", trigger, client.post("/runs/1/trigger", headers=token, json={}))
    orchestrator.fail("/api/workflow-orchestrator/run/", 500, times=10)
    check("get", run, client.get("/runs/1", headers=token))
    assert seen == {200, 400, 401, 403, 404, 413, 503}


@pytest.mark.parametrize("path", ["/health", "/openapi.json"])
def test_a_wrong_method_on_a_public_path_is_the_documented_405(make_app, path):
    client = make_app().test_client()
    response = client.post(path, headers=auth_header(7))
    document = client.get("/openapi.json").get_json()
    assert response.status_code == 405
    schema = document["components"]["responses"]["Error405"]["content"]["application/json"]
    jsonschema.validate(
        response.get_json(), {**schema["schema"], "components": document["components"]}
    )

"""The executor's HTTP API as the front sees it: statuses, error bodies, headers, authentication
(protocol §5.1-§5.6, §6.6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

import executor
from executor import create_app, runner_of
from executor.adapters.orchestrator import OrchestratorClient
from executor.adapters.stores.memory import MemoryRunStore
from executor.domain.executions import StepExecutionData
from executor.domain.outcomes import StepOutcome
from executor.domain.runs import Dispatch
from executor.errors import RunStoreError
from executor.extension import executor_state
from tests.conftest import AUTH_SECRET, auth_header, base_config, make_token, services_for
from tests.fakes.orchestrator import (
    API,
    ENV_SECRET,
    FakeOrchestrator,
    ScriptedRun,
    guidance_step,
)

VERSION_HEADER = "X-Executor-Version"
UNAUTHORIZED = {"error": "Unauthorized"}
FORBIDDEN = {"error": "Forbidden"}
RUN_NOT_FOUND = {"error": "Run not found or unavailable"}
INTERNAL_ERROR = {"error": "Internal server error"}
ALREADY_RUNNING = {"error": "This step is already running."}
ORCHESTRATOR_DOWN = {
    "error": "This step couldn't be completed. Please try again, and contact your administrator "
    "if the problem continues."
}
STORE_DOWN = {"error": "The step state could not be accessed. Please retry."}
INVALID_STEP = "The workflow step configuration is invalid. Please check the workflow designer."
UNSUPPORTED_STEP = "This step type is not yet supported."
BAD_RECORD_ID = "A record identifier contains an unsupported character and cannot be processed."

# --- helpers --------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(
    payload: dict[str, Any],
    *,
    alg: str = "HS256",
    secret: str = AUTH_SECRET,
) -> str:
    """A JWT built without PyJWT, so algorithms it refuses to produce can be tried too."""
    header = {"alg": alg, "typ": "JWT"}
    signing_input = (
        f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    )
    digests = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    if alg == "none":
        signature = ""
    else:
        mac = hmac.new(secret.encode(), signing_input.encode(), digests[alg])
        signature = _b64url(mac.digest())
    return f"{signing_input}.{signature}"


def valid_claims(**claims: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"id": 7, "iat": now, "exp": now + 3600, **claims}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def save_entries(app: Flask, run_id: str, *entries: StepExecutionData) -> None:
    store = executor_state(app).services.run_store
    for entry in entries:
        store.save_step_execution(run_id, entry)


def trigger(app: Flask, run_id: str | int, body: Any = None, *, user_id: Any = 7) -> Any:
    return app.test_client().post(
        f"/runs/{run_id}/trigger",
        json={} if body is None else body,
        headers=auth_header(user_id),
    )


class GatedOrchestratorClient(OrchestratorClient):
    """The real orchestrator client whose outcome reports wait until the test lets them go."""

    def __init__(self, base_url: str, env_secret: str) -> None:
        super().__init__(base_url, env_secret)
        self.reporting = threading.Event()
        self.release = threading.Event()

    def report_outcome(self, run_id: str, outcome: StepOutcome) -> Dispatch | None:
        self.reporting.set()
        self.release.wait(timeout=10)
        return super().report_outcome(run_id, outcome)


class CrashingRunStore(MemoryRunStore):
    """A run store with a bug: reading raises an exception nobody planned for."""

    def get_step_executions(self, run_id: str) -> list[StepExecutionData]:
        raise RuntimeError("secret internals: password=hunter2 at db.internal")


class UnavailableRunStore(MemoryRunStore):
    """A run store whose database is down."""

    def get_step_executions(self, run_id: str) -> list[StepExecutionData]:
        raise RunStoreError("connection refused by db.internal:5432")


@pytest.fixture
def make_app_with(orchestrator: FakeOrchestrator) -> Iterator[Callable[..., Flask]]:
    """Build an app with hand-picked ports (a given run store, a given orchestrator client)."""
    built: list[tuple[Flask, OrchestratorClient]] = []

    def build(
        store: MemoryRunStore | None = None,
        workflow: OrchestratorClient | None = None,
        **overrides: Any,
    ) -> Flask:
        store = store if store is not None else MemoryRunStore()
        workflow = workflow or OrchestratorClient(orchestrator.url, ENV_SECRET)
        services = services_for(orchestrator, store=store, workflow=workflow)
        app = create_app(base_config(orchestrator, **overrides), services=services)
        built.append((app, workflow))
        return app

    yield build
    for app, workflow in built:
        runner_of(app).stop()
        workflow.close()


@pytest.fixture
def started_app(make_app: Callable[..., Flask]) -> Flask:
    """An app whose runner accepts triggers; no polling, so only triggers claim runs."""
    app = make_app(POLLING_ENABLED=False)
    runner_of(app).start()
    return app


# --- GET /health ----------------------------------------------------------------------------------


def test_health_follows_the_runner_lifecycle_without_authentication(make_app):
    app = make_app(POLLING_ENABLED=False)
    client = app.test_client()

    before = client.get("/health")
    assert (before.status_code, before.json) == (503, {"state": "idle"})

    runner_of(app).start()
    running = client.get("/health")
    assert (running.status_code, running.json) == (200, {"state": "running"})

    runner_of(app).stop()
    after = client.get("/health")
    assert (after.status_code, after.json) == (503, {"state": "stopped"})


# --- GET /runs/<id> -------------------------------------------------------------------------------


def test_get_run_without_token_is_401_and_asks_the_orchestrator_nothing(orchestrator, make_app):
    response = make_app().test_client().get("/runs/42")
    assert (response.status_code, response.json) == (401, UNAUTHORIZED)
    assert orchestrator.count(f"{API}/run/") == 0


def test_get_run_is_503_when_the_access_check_fails(orchestrator, make_app):
    orchestrator.add_run(42, [guidance_step()])
    orchestrator.fail(f"{API}/run/42/access-check", 500)
    response = make_app().test_client().get("/runs/42", headers=auth_header(7))
    assert (response.status_code, response.json) == (503, {"error": "Service unavailable"})


def test_get_run_is_403_when_the_orchestrator_denies_access(orchestrator, make_app):
    orchestrator.add_run(42, [guidance_step()], user_id=8)
    app = make_app()
    save_entries(app, "42", {"type": "guidance", "stepIndex": 0, "pendingData": {}})

    response = app.test_client().get("/runs/42", headers=auth_header(7))

    assert (response.status_code, response.json) == (403, FORBIDDEN)
    access_checks = [r for r in orchestrator.requests if r.path.endswith("/access-check")]
    assert [r.query for r in access_checks] == [{"userId": "7"}]


def access_checks_asked(orchestrator) -> int:
    return len([r for r in orchestrator.requests if r.path.endswith("/access-check")])


def test_a_granted_access_is_reused_for_the_same_user_and_run(orchestrator, make_app):
    orchestrator.add_run(42, [guidance_step()], user_id=7)
    orchestrator.add_run(43, [guidance_step()], user_id=7)
    client = make_app(ACCESS_CHECK_CACHE_S=3600).test_client()

    for _ in range(3):
        assert client.get("/runs/42", headers=auth_header(7)).status_code == 200
    assert access_checks_asked(orchestrator) == 1
    # Another run, or another user, is asked about on its own.
    assert client.get("/runs/43", headers=auth_header(7)).status_code == 200
    assert client.get("/runs/42", headers=auth_header(8)).status_code == 403
    assert access_checks_asked(orchestrator) == 3


def test_a_refusal_is_asked_again_every_time(orchestrator, make_app):
    orchestrator.add_run(42, [guidance_step()], user_id=8)
    client = make_app(ACCESS_CHECK_CACHE_S=3600).test_client()

    assert client.get("/runs/42", headers=auth_header(7)).status_code == 403
    orchestrator.access[("42", 7)] = True  # access given meanwhile: visible at once
    assert client.get("/runs/42", headers=auth_header(7)).status_code == 200
    assert access_checks_asked(orchestrator) == 2


def test_with_no_access_cache_every_read_asks_the_orchestrator(orchestrator, make_app):
    orchestrator.add_run(42, [guidance_step()], user_id=7)
    client = make_app(ACCESS_CHECK_CACHE_S=0).test_client()

    assert client.get("/runs/42", headers=auth_header(7)).status_code == 200
    orchestrator.access[("42", 7)] = False  # revoked: refused on the very next read
    assert client.get("/runs/42", headers=auth_header(7)).status_code == 403
    assert access_checks_asked(orchestrator) == 2


def test_get_run_of_an_unknown_run_is_an_empty_list(orchestrator, make_app):
    orchestrator.access[("999", 7)] = True
    response = make_app().test_client().get("/runs/999", headers=auth_header(7))
    assert (response.status_code, response.json) == (200, {"steps": []})


def test_get_run_returns_entries_sorted_with_pipe_joined_record_ids(orchestrator, make_app):
    orchestrator.add_run(42, [guidance_step()])
    app = make_app()
    load_related: StepExecutionData = {
        "type": "load-related-record",
        "stepIndex": 2,
        "selectedRecordRef": {"collectionName": "customers", "recordId": ["123"], "stepIndex": 0},
        "pendingData": {
            "availableFields": [{"name": "orders", "displayName": "Orders"}],
            "suggestedField": {"name": "orders", "displayName": "Orders"},
            "availableRecordIds": [
                {"recordId": [987], "referenceFieldValue": "ORD-987"},
                {"recordId": ["A1", 2024], "referenceFieldValue": None},
            ],
            "suggestedRecord": {"recordId": [987], "referenceFieldValue": "ORD-987"},
        },
        "userConfirmation": {"userConfirmed": True, "selectedRecordId": ["987"]},
    }
    update: StepExecutionData = {
        "type": "update-record",
        "stepIndex": 1,
        "pendingData": {"displayName": "Tier", "name": "tier", "value": "gold"},
        "selectedRecordRef": {
            "collectionName": "customers",
            "recordId": ["A1", 2024],
            "stepIndex": 0,
        },
    }
    condition: StepExecutionData = {
        "type": "condition",
        "stepIndex": 0,
        "executionParams": {"answer": "Yes", "reasoning": "40 orders this year."},
        "executionResult": {"answer": "Yes"},
    }
    save_entries(app, "42", load_related, update, condition)  # saved out of order on purpose

    response = app.test_client().get("/runs/42", headers=auth_header(7))

    assert response.status_code == 200
    assert response.json == {
        "steps": [
            condition,
            {
                **update,
                "selectedRecordRef": {
                    "collectionName": "customers",
                    "recordId": "A1|2024",
                    "stepIndex": 0,
                },
            },
            {
                **load_related,
                "selectedRecordRef": {
                    "collectionName": "customers",
                    "recordId": "123",
                    "stepIndex": 0,
                },
                "pendingData": {
                    **load_related["pendingData"],
                    "availableRecordIds": [
                        {"recordId": "987", "referenceFieldValue": "ORD-987"},
                        {"recordId": "A1|2024", "referenceFieldValue": None},
                    ],
                    "suggestedRecord": {"recordId": "987", "referenceFieldValue": "ORD-987"},
                },
                # stored as an array and returned unchanged (protocol §2.10)
                "userConfirmation": {"userConfirmed": True, "selectedRecordId": ["987"]},
            },
        ]
    }


def test_get_run_with_an_unjoinable_record_id_is_400_with_the_user_message(orchestrator, make_app):
    orchestrator.add_run(42, [guidance_step()])
    app = make_app()
    save_entries(
        app,
        "42",
        {
            "type": "read-record",
            "stepIndex": 0,
            "executionParams": {"fields": []},
            "executionResult": {"fields": []},
            "selectedRecordRef": {
                "collectionName": "customers",
                "recordId": ["a|b"],
                "stepIndex": 0,
            },
        },
    )
    response = app.test_client().get("/runs/42", headers=auth_header(7))
    assert (response.status_code, response.json) == (400, {"error": BAD_RECORD_ID})


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("run_id", ["abc", "42abc", "-1", "4 2", "1e3"])
def test_a_non_numeric_run_id_is_404_without_calling_the_orchestrator(
    orchestrator, make_app, method, run_id
):
    path = f"/runs/{run_id}" if method == "GET" else f"/runs/{run_id}/trigger"
    response = make_app().test_client().open(path, method=method, json={}, headers=auth_header(7))
    assert (response.status_code, response.json) == (404, RUN_NOT_FOUND)
    assert orchestrator.requests == []


def test_get_run_is_503_when_the_run_store_is_down(orchestrator, make_app_with):
    orchestrator.add_run(42, [guidance_step()])
    app = make_app_with(UnavailableRunStore())
    response = app.test_client().get("/runs/42", headers=auth_header(7))
    assert (response.status_code, response.json) == (503, STORE_DOWN)
    assert "db.internal" not in response.get_data(as_text=True)


def test_an_unexpected_exception_is_a_bare_500_and_its_traceback_is_logged(
    orchestrator, make_app_with, caplog
):
    orchestrator.add_run(42, [guidance_step()])
    app = make_app_with(CrashingRunStore())

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/runs/42", headers=auth_header(7))

    assert (response.status_code, response.json) == (500, INTERNAL_ERROR)
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert response.headers[VERSION_HEADER] == executor.__version__
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert logged, "the crash must be logged with its traceback"
    assert "hunter2" in caplog.text  # the operator, unlike the client, gets the details


# --- POST /runs/<id>/trigger ----------------------------------------------------------------------


def test_trigger_claims_the_run_and_answers_before_the_chain_reports(orchestrator, started_app):
    orchestrator.add_run(42, [guidance_step("manual")])

    response = trigger(started_app, 42, {"pendingData": {"userInput": "Call back"}})

    assert (response.status_code, response.json) == (200, {"triggered": True})
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
    update = orchestrator.updates(42)[0]
    assert update["stepUpdate"]["stepIndex"] == 0
    assert update["executionStatus"] == {"type": "success"}


def test_trigger_of_a_run_with_nothing_to_claim_is_404(orchestrator, started_app):
    response = trigger(started_app, 42)
    assert (response.status_code, response.json) == (404, RUN_NOT_FOUND)
    assert orchestrator.count(f"{API}/available-run/42") == 1


def test_trigger_by_another_user_is_403_and_the_run_is_not_executed(orchestrator, started_app):
    orchestrator.add_run(42, [guidance_step("manual")], user_id=8)

    response = trigger(started_app, 42, {"pendingData": {"userInput": "hijack"}}, user_id=7)

    assert (response.status_code, response.json) == (403, FORBIDDEN)
    assert runner_of(started_app).in_flight.wait_settled(timeout=5)
    assert orchestrator.updates(42) == []
    assert executor_state(started_app).services.run_store.get_step_executions("42") == []


def test_trigger_while_the_run_is_in_flight_is_400_without_a_second_claim(
    orchestrator, make_app_with
):
    workflow = GatedOrchestratorClient(orchestrator.url, ENV_SECRET)
    app = make_app_with(workflow=workflow, POLLING_ENABLED=False)
    runner_of(app).start()
    orchestrator.add_run(42, [guidance_step("manual")])

    try:
        first = trigger(app, 42, {"pendingData": {"userInput": "first"}})
        assert (first.status_code, first.json) == (200, {"triggered": True})
        assert workflow.reporting.wait(timeout=10), "the first chain never reported its outcome"

        second = trigger(app, 42, {"pendingData": {"userInput": "second"}})

        assert (second.status_code, second.json) == (400, ALREADY_RUNNING)
        assert orchestrator.count(f"{API}/available-run/") == 1
    finally:
        workflow.release.set()
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
    assert runner_of(app).in_flight.wait_settled(timeout=5)
    steps = app.test_client().get("/runs/42", headers=auth_header(7)).json["steps"]
    assert steps == [
        {"type": "guidance", "stepIndex": 0, "executionResult": {"userInput": "first"}}
    ]


def _envelope_without_user_profile(run_id: int) -> dict[str, Any]:
    run = ScriptedRun(run_id=run_id, steps=[guidance_step()])
    run.open_step(0)
    envelope = run.envelope()
    del envelope["userProfile"]
    return envelope


def _envelope_with_unsupported_step(run_id: int) -> dict[str, Any]:
    end: dict[str, Any] = {"type": "end", "title": None, "executionType": "manual", "outgoing": []}
    run = ScriptedRun(run_id=run_id, steps=[end])
    run.open_step(0)
    return run.envelope()


@pytest.mark.parametrize(
    ("envelope_of", "message"),
    [
        pytest.param(_envelope_without_user_profile, INVALID_STEP, id="no-user-profile"),
        pytest.param(_envelope_with_unsupported_step, UNSUPPORTED_STEP, id="unsupported-type"),
    ],
)
def test_trigger_of_a_malformed_run_reports_it_and_is_400(
    orchestrator, started_app, envelope_of, message
):
    orchestrator.add_raw_run(envelope_of(42))

    response = trigger(started_app, 42, {"pendingData": {"userInput": "x"}})

    assert (response.status_code, response.json) == (400, {"error": message})
    assert orchestrator.updates(42) == [
        {
            "runId": 42,
            "stepUpdate": {
                "stepIndex": 0,
                "attributes": {"done": True, "context": {"status": "error", "error": message}},
            },
            "executionStatus": {"type": "error", "message": message},
        }
    ]


def test_trigger_is_503_when_the_orchestrator_fails_the_claim(orchestrator, started_app):
    orchestrator.add_run(42, [guidance_step("manual")])
    orchestrator.fail(f"{API}/available-run/", 500)

    response = trigger(started_app, 42, {"pendingData": {"userInput": "x"}})

    assert (response.status_code, response.json) == (503, ORCHESTRATOR_DOWN)
    assert runner_of(started_app).in_flight.snapshot() == frozenset()


def test_trigger_of_a_step_failing_the_normalized_form_checks_is_500(orchestrator, started_app):
    # Protocol §3.4.6: not a malformed run (nothing reported), the trigger fails with a 500.
    orchestrator.add_run(42, [guidance_step("bogus")])

    response = trigger(started_app, 42, {"pendingData": {"userInput": "x"}})

    assert (response.status_code, response.json) == (500, INTERNAL_ERROR)
    assert orchestrator.updates(42) == []


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param("{not json", "The request body is not valid JSON.", id="malformed"),
        pytest.param("[1, 2]", "The request body must be a JSON object.", id="array"),
        pytest.param('"text"', "The request body must be a JSON object.", id="string"),
        pytest.param("null", "The request body must be a JSON object.", id="null"),
    ],
)
def test_trigger_with_a_bad_body_is_400_json_and_claims_nothing(
    orchestrator, started_app, data, error
):
    response = started_app.test_client().post(
        "/runs/42/trigger", data=data, content_type="application/json", headers=auth_header(7)
    )
    assert (response.status_code, response.json) == (400, {"error": error})
    assert response.headers[VERSION_HEADER] == executor.__version__
    assert orchestrator.count(f"{API}/available-run/") == 0


def test_trigger_with_a_body_over_the_limit_is_413_json(orchestrator, make_app):
    app = make_app(MAX_REQUEST_BYTES=1024, POLLING_ENABLED=False)
    runner_of(app).start()
    orchestrator.add_run(42, [guidance_step("manual")])

    response = trigger(app, 42, {"pendingData": {"userInput": "x" * 2000}})

    assert response.status_code == 413
    assert response.is_json and set(response.json) == {"error"}
    assert orchestrator.count(f"{API}/available-run/") == 0
    small = trigger(app, 42, {"pendingData": {"userInput": "x" * 100}})
    assert (small.status_code, small.json) == (200, {"triggered": True})


# --- routing errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nowhere"), ("GET", "/runs"), ("DELETE", "/runs/42"), ("GET", "/runs/42/trigger")],
)
def test_routing_errors_come_after_authentication(orchestrator, make_app, method, path):
    response = make_app().test_client().open(path, method=method)
    assert (response.status_code, response.json) == (401, UNAUTHORIZED)


@pytest.mark.parametrize("path", ["/nowhere", "/runs", "/runs/42/steps", "/health/deep"])
def test_an_unknown_path_with_a_token_is_a_json_404(make_app, path):
    response = make_app().test_client().get(path, headers=auth_header(7))
    assert response.status_code == 404
    assert response.is_json
    assert set(response.json) == {"error"}
    assert isinstance(response.json["error"], str) and response.json["error"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/runs/42", "GET"),
        ("POST", "/runs/42", "GET"),
        ("GET", "/runs/42/trigger", "POST"),
        ("PUT", "/runs/42/trigger", "POST"),
    ],
)
def test_a_wrong_method_with_a_token_is_a_json_405_with_allow(make_app, method, path, allowed):
    response = make_app().test_client().open(path, method=method, headers=auth_header(7))
    assert response.status_code == 405
    assert response.is_json
    assert set(response.json) == {"error"}
    assert allowed in {m.strip() for m in response.headers["Allow"].split(",")}


# --- X-Executor-Version ---------------------------------------------------------------------------


def test_every_response_carries_the_version_header(orchestrator, make_app):
    app = make_app(MAX_REQUEST_BYTES=1024, POLLING_ENABLED=False)
    orchestrator.access[("42", 7)] = True
    client = app.test_client()
    token = auth_header(7)
    responses = {
        "health idle": client.get("/health"),
        "401": client.get("/runs/42"),
        "200 runs": client.get("/runs/42", headers=token),
        "403": client.get("/runs/43", headers=token),
        "404 run id": client.get("/runs/abc", headers=token),
        "404 route": client.get("/nowhere", headers=token),
        "405": client.delete("/runs/42", headers=token),
        "400 body": client.post("/runs/42/trigger", data="{", headers=token),
        "413": client.post("/runs/42/trigger", data="x" * 2000, headers=token),
        "503 runner idle": client.post("/runs/42/trigger", json={}, headers=token),
    }
    runner_of(app).start()
    responses["health running"] = client.get("/health")
    responses["404 trigger"] = client.post("/runs/42/trigger", json={}, headers=token)
    runner_of(app).stop()
    responses["health stopped"] = client.get("/health")

    missing = {
        name: response.status_code
        for name, response in responses.items()
        if response.headers.get(VERSION_HEADER) != executor.__version__
    }
    assert missing == {}


# --- authentication -------------------------------------------------------------------------------


def _tokens_refused() -> list[Any]:
    now = int(time.time())
    return [
        pytest.param({}, id="missing"),
        pytest.param(bearer("not-a-jwt"), id="malformed"),
        pytest.param(bearer("a.b.c"), id="malformed-segments"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": f"Basic {make_token(7)}"}, id="not-bearer"),
        pytest.param(
            bearer(make_token(7, secret="another-secret-that-is-also-long-enough!!")),
            id="wrong-secret",
        ),
        pytest.param(bearer(make_token(7, expires_in=-60)), id="expired"),
        pytest.param(bearer(hand_made_token(valid_claims(), alg="none")), id="alg-none"),
        pytest.param(
            bearer(hand_made_token(valid_claims(), alg="none")[:-1] + ".sig"), id="alg-none-sig"
        ),
        pytest.param(bearer(hand_made_token(valid_claims(), alg="HS384")), id="hs384"),
        pytest.param(bearer(hand_made_token(valid_claims(), alg="HS512")), id="hs512"),
        pytest.param(bearer(hand_made_token({"iat": now, "exp": now + 3600})), id="no-id"),
        pytest.param(bearer(make_token("abc")), id="id-abc"),
        pytest.param(bearer(make_token(0)), id="id-0"),
        pytest.param(bearer(make_token("0")), id="id-string-0"),
        pytest.param(bearer(make_token(-3)), id="id-negative"),
        pytest.param(bearer(make_token(True)), id="id-true"),
        pytest.param(bearer(make_token(7.5)), id="id-fraction"),
        pytest.param(bearer(make_token(2**53)), id="id-beyond-javascript-integers"),
        pytest.param(bearer(make_token(1e300)), id="id-huge-float"),
        pytest.param(bearer(make_token(None)), id="id-null"),
        pytest.param(bearer(make_token([7])), id="id-list"),
        pytest.param(bearer(make_token(" 7")), id="id-padded"),
        pytest.param(bearer(make_token(7, padding="x" * 8200)), id="oversized"),
        pytest.param(bearer(hand_made_token({"id": 7, "iat": now})), id="no-exp"),
    ]


@pytest.mark.parametrize("headers", _tokens_refused())
def test_a_refused_token_is_401_unauthorized(orchestrator, make_app, headers):
    orchestrator.access[("42", 7)] = True
    response = make_app().test_client().get("/runs/42", headers=headers)
    assert (response.status_code, response.json) == (401, UNAUTHORIZED)
    assert response.headers[VERSION_HEADER] == executor.__version__
    assert orchestrator.requests == []


@pytest.mark.parametrize("user_id", [2**53 - 1, str(2**53 - 1)])
def test_the_largest_id_javascript_holds_exactly_is_accepted(orchestrator, make_app, user_id):
    orchestrator.access[("42", 2**53 - 1)] = True
    response = make_app().test_client().get("/runs/42", headers=bearer(make_token(user_id)))
    assert response.status_code == 200


def test_a_hand_made_hs256_token_is_accepted(orchestrator, make_app):
    # Control for the hand-made refusals above: the crafting itself is sound.
    orchestrator.access[("42", 7)] = True
    token = hand_made_token(valid_claims())
    response = make_app().test_client().get("/runs/42", headers=bearer(token))
    assert (response.status_code, response.json) == (200, {"steps": []})


def test_a_token_just_under_the_size_limit_is_accepted(orchestrator, make_app):
    orchestrator.access[("42", 7)] = True
    token = make_token(7, padding="")
    token = make_token(7, padding="x" * ((8192 - len(token)) * 3 // 4 - 4))
    assert 8100 < len(token) <= 8192
    response = make_app().test_client().get("/runs/42", headers=bearer(token))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [
        pytest.param("245", 245, id="numeric-string"),
        pytest.param(245, 245, id="integer"),
    ],
)
def test_the_user_is_the_tokens_id_claim(orchestrator, make_app, user_id, expected):
    orchestrator.access[("42", expected)] = True
    response = make_app().test_client().get("/runs/42", headers=auth_header(user_id))
    assert (response.status_code, response.json) == (200, {"steps": []})
    assert [r.query for r in orchestrator.requests] == [{"userId": str(expected)}]


def test_the_token_may_come_in_the_session_cookie(orchestrator, make_app):
    orchestrator.access[("42", 245)] = True
    client = make_app().test_client()
    client.set_cookie("forest_session_token", make_token("245"))
    response = client.get("/runs/42")
    assert (response.status_code, response.json) == (200, {"steps": []})
    assert [r.query for r in orchestrator.requests] == [{"userId": "245"}]


def test_the_user_cannot_be_chosen_in_the_trigger_body(orchestrator, started_app):
    orchestrator.add_run(42, [guidance_step("manual")], user_id=8)
    response = trigger(
        started_app, 42, {"pendingData": {"userInput": "x"}, "userId": 8, "id": 8}, user_id=7
    )
    assert (response.status_code, response.json) == (403, FORBIDDEN)


def test_a_refused_claim_is_logged_without_the_token_or_the_payload(make_app, caplog):
    token = make_token("abc", email="ada.private@example.com", note="payload-marker-5521")

    with caplog.at_level(logging.DEBUG):
        response = make_app().test_client().get("/runs/42", headers=bearer(token))

    assert (response.status_code, response.json) == (401, UNAUTHORIZED)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, "a refused claim is logged"
    for record in caplog.records:
        everything = f"{record.getMessage()} {vars(record)}"
        for secret in (token, token.split(".")[1], "ada.private", "payload-marker-5521"):
            assert secret not in everything

"""The API against its own ``/openapi.json``: schemathesis generates requests for every documented
operation from the document (valid and invalid path parameters and bodies, with and without a
token) and checks each answer with its standard checks: no 5xx, a documented status, a body that
fits the documented schema, the documented headers, authentication not ignored.

``test_bad_requests.py`` fuzzes what the document does not describe (raw bytes, forged tokens,
odd paths); this test holds the executor to what the document promises."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from executor.extension import runner_of
from tests.conftest import auth_header
from tests.fakes.orchestrator import FakeOrchestrator, guidance_step
from tests.reliability.conftest import BuildApp
from tests.reliability.support import FUZZ


@pytest.fixture
def contract_app(apps: BuildApp, orchestrator: FakeOrchestrator) -> Flask:
    for run_id in (1, 2, 3):  # runs the generated requests can really read and trigger
        orchestrator.add_run(run_id, [guidance_step("manual")])
    app = apps(orchestrator, POLLING_ENABLED=False, MAX_REQUEST_BYTES=4096)
    runner_of(app).start()
    return app


def test_every_answer_is_the_documented_one(contract_app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", contract_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis leaves out the document's own route.
    assert {(op.method.upper(), op.path) for op in operations} == {
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("GET", "/runs/{runId}"),
        ("POST", "/runs/{runId}/trigger"),
        ("POST", "/mcp-oauth-credentials"),
        ("DELETE", "/mcp-oauth-credentials/{mcpServerId}"),
        ("GET", "/list-mcp-tools"),
    }
    for operation in operations:
        # A deposit's rules go beyond JSON Schema (a safe token endpoint, a parseable date): a
        # body the schema admits may still be a documented 400, so only that check is left out.
        semantic = (
            operation.path.startswith("/mcp-oauth-credentials") and operation.method == "post"
        )
        answers_as_documented(operation, [positive_data_acceptance] if semantic else [])


def answers_as_documented(operation: Any, excluded: list[Any]) -> None:
    @given(case=operation.as_strategy(), with_token=st.booleans())
    @settings(FUZZ, max_examples=60)
    def run(case: Any, with_token: bool) -> None:
        # Without a token the documented answer is 401; with one, the route's own. A token put
        # in by hand stays when schemathesis strips "its" credentials to see whether they are
        # checked, so that check runs on the requests without one only.
        checks_left_out = list(excluded)
        if with_token:
            case.headers = {**(case.headers or {}), **auth_header(7)}
            checks_left_out.append(ignored_auth)
        case.call_and_validate(excluded_checks=checks_left_out)

    run()

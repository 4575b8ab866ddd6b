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
        ("GET", "/runs/{runId}"),
        ("POST", "/runs/{runId}/trigger"),
    }
    for operation in operations:

        @given(case=operation.as_strategy(), with_token=st.booleans())
        @settings(FUZZ, max_examples=60)
        def answers_as_documented(case: Any, with_token: bool) -> None:
            # Without a token the documented answer is 401; with one, the route's own.
            if with_token:
                case.headers = {**(case.headers or {}), **auth_header(7)}
            case.call_and_validate()

        answers_as_documented()

"""The orchestrator adapter over a real socket: headers, retries, timeouts, hostile answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from executor.adapters.orchestrator import OrchestratorClient
from executor.domain.outcomes import StepOutcome, StepStatus
from executor.domain.runs import MalformedRun
from executor.domain.steps import OutcomeType
from executor.errors import MalformedRunError, WorkflowPortError
from tests.fakes.orchestrator import API, ENV_SECRET, FakeOrchestrator, guidance_step

FAST_RETRIES = (0.01, 0.01, 0.01)


@pytest.fixture
def client(orchestrator: FakeOrchestrator) -> Iterator[OrchestratorClient]:
    client = OrchestratorClient(
        orchestrator.url, ENV_SECRET, timeout_s=5, retry_delays_s=FAST_RETRIES
    )
    yield client
    client.close()


def outcome(status: StepStatus = StepStatus.SUCCESS, **extra: Any) -> StepOutcome:
    return StepOutcome(OutcomeType.GUIDANCE, "step-0", 0, status, **extra)


def test_every_call_carries_the_environment_secret(
    orchestrator: FakeOrchestrator, client: OrchestratorClient
) -> None:
    orchestrator.add_run(1, [guidance_step()])
    client.fetch_pending_runs()
    client.report_outcome("1", outcome())
    assert orchestrator.requests
    assert all(r.headers.get("Forest-Secret-Key") == ENV_SECRET for r in orchestrator.requests)


def test_a_wrong_secret_is_an_unavailable_error_not_retried(orchestrator: FakeOrchestrator) -> None:
    client = OrchestratorClient(orchestrator.url, "cd" * 32, retry_delays_s=FAST_RETRIES)
    with pytest.raises(WorkflowPortError) as raised:
        client.report_outcome("1", outcome())
    assert raised.value.status == 401
    assert "bad secret" in str(raised.value)  # the server's errors[0].detail, for the logs
    assert orchestrator.count(f"{API}/update-step") == 1
    client.close()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_failures_of_retried_calls_are_retried_up_to_four_attempts(
    orchestrator: FakeOrchestrator, client: OrchestratorClient, status: int
) -> None:
    orchestrator.add_run(1, [guidance_step()])
    orchestrator.fail(f"{API}/update-step", status, times=3)
    assert client.report_outcome("1", outcome()) is None
    assert orchestrator.count(f"{API}/update-step") == 4

    orchestrator.fail(f"{API}/update-step", status, times=4)
    with pytest.raises(WorkflowPortError):
        client.report_outcome("1", outcome())
    assert orchestrator.count(f"{API}/update-step") == 8


def test_other_failures_and_unretried_calls_fail_at_once(
    orchestrator: FakeOrchestrator, client: OrchestratorClient
) -> None:
    orchestrator.fail(f"{API}/update-step", 400)
    with pytest.raises(WorkflowPortError):
        client.report_outcome("1", outcome())
    orchestrator.fail(PENDING := f"{API}/pending-run", 503)
    with pytest.raises(WorkflowPortError):
        client.fetch_pending_runs()
    assert orchestrator.count(f"{API}/update-step") == 1
    assert orchestrator.count(PENDING) == 1


def test_a_slow_orchestrator_times_out_as_408_and_retried_calls_retry(
    orchestrator: FakeOrchestrator,
) -> None:
    client = OrchestratorClient(
        orchestrator.url, ENV_SECRET, timeout_s=0.2, retry_delays_s=FAST_RETRIES
    )
    orchestrator.delay(f"{API}/pending-run", 1.0)
    with pytest.raises(WorkflowPortError) as raised:
        client.fetch_pending_runs()
    assert raised.value.status == 408

    orchestrator.delay(f"{API}/executor-metadata", 1.0)
    with pytest.raises(WorkflowPortError):
        client.report_executor_metadata("1.0.0")
    assert orchestrator.count(f"{API}/executor-metadata") == 4
    client.close()


def test_a_refused_connection_is_an_unavailable_error() -> None:
    client = OrchestratorClient("http://127.0.0.1:9", ENV_SECRET, retry_delays_s=FAST_RETRIES)
    with pytest.raises(WorkflowPortError) as raised:
        client.fetch_pending_runs()
    assert raised.value.status is None
    client.close()


def test_claim_maps_the_run_and_null_means_nothing_to_claim(
    orchestrator: FakeOrchestrator, client: OrchestratorClient
) -> None:
    orchestrator.add_run(42, [guidance_step()])
    dispatch = client.claim_run("42")
    assert dispatch is not None
    assert dispatch.run_id == "42"
    assert dispatch.forest_server_token == "server-token-42"
    assert client.claim_run("42") is None  # already claimed
    assert client.claim_run("999") is None


def test_claiming_a_malformed_run_raises_with_what_to_report(
    orchestrator: FakeOrchestrator, client: OrchestratorClient
) -> None:
    envelope = orchestrator.add_run(42, [guidance_step()]).envelope()
    envelope["collectionName"] = ""
    orchestrator.add_raw_run(envelope)
    with pytest.raises(MalformedRunError) as raised:
        client.claim_run("42")
    run = raised.value.run
    assert isinstance(run, MalformedRun)
    assert (run.run_id, run.step_id, run.step_index) == ("42", "step-0", 0)
    assert run.user_message == raised.value.user_message


def test_pending_runs_split_into_dispatches_and_malformed_and_skip_the_rest(
    orchestrator: FakeOrchestrator, client: OrchestratorClient, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator.add_run(1, [guidance_step()])
    malformed = orchestrator.add_run(2, [guidance_step()]).envelope()
    del malformed["userProfile"]
    orchestrator.add_raw_run(malformed)
    bad_mode = orchestrator.add_run(3, [guidance_step("bogus")]).envelope()
    orchestrator.add_raw_run(bad_mode)
    done = orchestrator.add_run(4, [guidance_step()])
    done.history[0]["done"] = True

    pending = client.fetch_pending_runs()

    assert [d.run_id for d in pending.dispatches] == ["1"]
    assert [m.run_id for m in pending.malformed] == ["2"]
    assert pending.fetched == 3  # run 4 has no available step, so the fake does not offer it
    assert any("invalid step definition" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    "answer", [{"hasAccess": False}, {"hasAccess": "true"}, {"hasAccess": 1}, {}, [], "yes"]
)
def test_anything_but_has_access_true_is_no_access(
    orchestrator: FakeOrchestrator, client: OrchestratorClient, answer: Any
) -> None:
    orchestrator.add_run(42, [guidance_step()], user_id=7)
    orchestrator.access_answer = answer
    assert client.has_access("42", 7) is False
    orchestrator.access_answer = {"hasAccess": True}
    assert client.has_access("42", 7) is True


def test_access_check_sends_the_user_id(
    orchestrator: FakeOrchestrator, client: OrchestratorClient
) -> None:
    orchestrator.add_run(42, [guidance_step()], user_id=7)
    assert client.has_access("42", 7) is True
    assert client.has_access("42", 8) is False
    request = orchestrator.requests[-1]
    assert request.path == f"{API}/run/42/access-check"
    assert request.query == {"userId": "8"}


def test_an_unparsable_next_step_is_logged_and_the_outcome_still_counts(
    orchestrator: FakeOrchestrator, client: OrchestratorClient, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator.add_run(1, [guidance_step(), guidance_step()])
    orchestrator.update_answer = lambda body, answer: {"id": 1, "workflowHistory": "garbage"}
    assert client.report_outcome("1", outcome()) is None
    assert any("Failed to parse chained next step" in r.message for r in caplog.records)


def test_a_non_json_or_oversized_answer_is_an_unavailable_error(
    orchestrator: FakeOrchestrator, client: OrchestratorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    orchestrator.update_answer = lambda body, answer: "x" * 2048
    monkeypatch.setattr("executor.adapters.http.MAX_RESPONSE_BYTES", 1024)
    with pytest.raises(WorkflowPortError, match="more than 1024 bytes"):
        client.report_outcome("1", outcome())


def test_a_malformed_run_report_is_an_error_outcome_of_type_record(
    orchestrator: FakeOrchestrator, client: OrchestratorClient
) -> None:
    orchestrator.add_run(42, [guidance_step()])
    client.report_malformed_run(
        MalformedRun("42", "step-0", 0, "The workflow step configuration is invalid.", "tech")
    )
    assert orchestrator.updates(42) == [
        {
            "runId": 42,
            "stepUpdate": {
                "stepIndex": 0,
                "attributes": {
                    "done": True,
                    "context": {
                        "status": "error",
                        "error": "The workflow step configuration is invalid.",
                    },
                },
            },
            "executionStatus": {
                "type": "error",
                "message": "The workflow step configuration is invalid.",
            },
        }
    ]


def test_a_malformed_run_without_a_step_is_only_logged(
    orchestrator: FakeOrchestrator, client: OrchestratorClient, caplog: pytest.LogCaptureFixture
) -> None:
    client.report_malformed_run(MalformedRun("42", None, None, "msg", "empty history"))
    assert orchestrator.count(API) == 0
    assert any("cannot be reported" in r.message for r in caplog.records)

"""The Runner: lifecycle, the server it owns, polling, triggers, chains and drain."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from flask import Flask

from executor.adapters.stores.sql import SqlRunStore
from executor.domain.outcomes import StepOutcome
from executor.errors import StepStateError
from executor.extension import executor_state, runner_of
from executor.runner import RunnerState
from executor.runner.poller import Backoff
from executor.servers import ServerStartError
from executor.steps.base import StepExecutor
from tests.conftest import auth_header, services_for
from tests.fakes.orchestrator import API, FakeOrchestrator, condition_step, guidance_step
from tests.fakes.steps import ScriptedSteps
from tests.waiting import eventually

PENDING = f"{API}/pending-run"

MakeApp = Callable[..., Flask]


def executor_threads() -> set[str]:
    return {
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("executor-", "step-")) and t.is_alive()
    }


def scripted_app(
    make_app: MakeApp, orchestrator: FakeOrchestrator, steps: ScriptedSteps, **config: Any
) -> Flask:
    return make_app(services=services_for(orchestrator, steps), **config)


# --- lifecycle ---------------------------------------------------------------------------------


def test_start_twice_creates_no_second_poller_or_server(make_app: MakeApp) -> None:
    app = make_app(HTTP_PORT=0)
    runner = executor_state(app).runner
    runner_with_server = type(runner)(
        runner.settings, runner.services, app=app, http_port=0, http_host="127.0.0.1"
    )
    runner_with_server.start()
    try:
        poller, port = runner_with_server.poller, runner_with_server.http_port
        runner_with_server.start()
        assert runner_with_server.poller is poller
        assert runner_with_server.http_port == port
        assert sorted(executor_threads()).count("executor-poller") == 1
    finally:
        runner_with_server.stop()


def test_stop_when_idle_is_a_no_op_and_stopped_runner_restarts(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    app = make_app()
    runner = runner_of(app)
    runner.stop()
    assert runner.state is RunnerState.IDLE

    runner.start()
    runner.stop()
    runner.stop()
    assert runner.state is RunnerState.STOPPED
    assert "executor-poller" not in executor_threads()

    orchestrator.add_run(5, [guidance_step("manual")])
    runner.start()  # a stopped runner starts again and works
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(5)) == 1)
    assert runner.state is RunnerState.RUNNING


def test_port_zero_serves_real_requests_on_the_chosen_port(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    from executor import Runner

    app = make_app()
    state = executor_state(app)
    runner = Runner(state.settings, state.services, app=app, http_port=0)
    state.runner = runner  # the app's /health reports this runner
    runner.start()
    port = runner.http_port
    try:
        assert port and port > 0
        response = httpx.get(f"http://127.0.0.1:{port}/health")
        assert response.status_code == 200
        assert response.json() == {"state": "running"}
    finally:
        runner.stop()
    assert runner.http_port is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_a_busy_port_fails_the_start_and_leaves_nothing_running(make_app: MakeApp) -> None:
    from executor import Runner

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app = make_app()
        state = executor_state(app)
        before = executor_threads()
        runner = Runner(state.settings, state.services, app=app, http_port=port)
        with pytest.raises(ServerStartError, match=f"Could not listen on 127.0.0.1:{port}"):
            runner.start()
    assert runner.state is RunnerState.IDLE
    assert runner.poller is None
    assert executor_threads() - before <= {"executor-metadata"}  # a one-shot report may linger


def test_an_unreachable_store_fails_the_start_cleanly(
    orchestrator: FakeOrchestrator, make_app: MakeApp
) -> None:
    from executor.errors import RunStoreError

    store = SqlRunStore("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    app = make_app(services=services_for(orchestrator, store=store))
    runner = runner_of(app)
    with pytest.raises(RunStoreError):
        runner.start()
    assert runner.state is RunnerState.IDLE
    assert "executor-poller" not in executor_threads()
    assert orchestrator.count(API) == 0


def test_start_reports_the_executor_version(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    from executor import __version__

    runner_of(make_app()).start()
    assert orchestrator.wait_until(lambda: orchestrator.count(f"{API}/executor-metadata") == 1)
    request = next(r for r in orchestrator.requests if r.path.endswith("executor-metadata"))
    assert request.body == {"version": __version__}


# --- polling -----------------------------------------------------------------------------------


def test_the_first_poll_waits_one_interval_by_default(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    orchestrator.add_run(1, [guidance_step("manual")])
    app = make_app(POLLING_INTERVAL_S=3600, FIRST_POLL_DELAY_S=None)
    runner_of(app).start()
    # A trigger round trip proves the runner is up; no poll happened meanwhile.
    response = app.test_client().post("/runs/1/trigger", headers=auth_header(7))
    assert response.status_code == 200
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(1)) == 1)
    assert orchestrator.count(PENDING) == 0


def test_polled_runs_execute_and_malformed_ones_are_reported(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    orchestrator.add_run(1, [condition_step(execution_type="manual")])
    broken = orchestrator.add_run(2, [guidance_step("manual")]).envelope()
    del broken["userProfile"]
    orchestrator.add_raw_run(broken)
    runner_of(make_app()).start()

    assert orchestrator.wait_until(lambda: orchestrator.updates(1) and orchestrator.updates(2))
    assert orchestrator.updates(1)[0]["executionStatus"] == {"type": "awaiting-input"}
    assert orchestrator.updates(2)[0] == {
        "runId": 2,
        "stepUpdate": {
            "stepIndex": 0,
            "attributes": {
                "done": True,
                "context": {
                    "status": "error",
                    "error": "The workflow step configuration is invalid. Please check the "
                    "workflow designer.",
                },
            },
        },
        "executionStatus": {
            "type": "error",
            "message": "The workflow step configuration is invalid. Please check the workflow "
            "designer.",
        },
    }


def test_a_run_in_flight_is_not_started_again_by_a_poll(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    steps = ScriptedSteps()
    steps.gate.clear()
    run = orchestrator.add_run(1, [guidance_step("manual")])
    app = scripted_app(make_app, orchestrator, steps, POLLING_ENABLED=False)
    runner = runner_of(app)
    runner.start()
    assert app.test_client().post("/runs/1/trigger", headers=auth_header(7)).status_code == 200
    assert steps.entered.wait(5)
    run.claimed = False  # the orchestrator offers the run again while it is executing

    runner.poll_once()

    assert orchestrator.count(PENDING) == 1
    steps.gate.set()
    assert runner.in_flight.wait_settled(["1"], timeout=5)
    assert steps.executed("1") == [0]


def test_orchestrator_failures_back_off_log_once_and_recover(
    make_app: MakeApp, orchestrator: FakeOrchestrator, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator.fail(PENDING, 503, times=4)
    orchestrator.add_run(1, [guidance_step("manual")])
    caplog.set_level("DEBUG")
    app = make_app(POLLING_INTERVAL_S=0.01, POLL_BACKOFF_MAX_S=0.05)
    runner_of(app).start()

    assert orchestrator.wait_until(lambda: len(orchestrator.updates(1)) == 1)
    warnings = [r for r in caplog.records if "backing off" in r.message]
    recoveries = [r for r in caplog.records if "succeeded again after 4 failed" in r.message]
    assert len(warnings) == 1
    assert len(recoveries) == 1
    assert runner_of(app).poller is not None
    assert runner_of(app).poller.backoff.failures == 0  # type: ignore[union-attr]


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    import random

    backoff = Backoff(1.0, 8.0, rng=random.Random(4))
    assert backoff.next_delay() == 1.0
    ceilings = []
    for _ in range(6):
        backoff.record_failure()
        delay = backoff.next_delay()
        ceiling = min(8.0, 2 ** (backoff.failures - 1))
        assert ceiling / 2 <= delay <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [1, 2, 4, 8, 8, 8]
    backoff.record_success()
    assert backoff.next_delay() == 1.0


# --- chains ------------------------------------------------------------------------------------


def test_a_chain_runs_every_step_the_orchestrator_hands_back(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    steps = ScriptedSteps()
    orchestrator.add_run(1, [guidance_step("fully-automated")] * 5)
    runner_of(scripted_app(make_app, orchestrator, steps)).start()

    assert orchestrator.wait_until(lambda: orchestrator.runs["1"].finished)
    assert steps.executed("1") == [0, 1, 2, 3, 4]
    assert [u["stepUpdate"]["stepIndex"] for u in orchestrator.updates(1)] == [0, 1, 2, 3, 4]
    assert orchestrator.count(PENDING) >= 1


def test_the_chain_depth_limit_yields_to_the_next_poll(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    steps = ScriptedSteps()
    orchestrator.add_run(1, [guidance_step("fully-automated")] * 5)
    app = scripted_app(make_app, orchestrator, steps, MAX_CHAIN_DEPTH=1, POLLING_ENABLED=False)
    before_start = app.test_client().post("/runs/1/trigger", headers=auth_header(7))
    assert before_start.status_code == 503  # a runner that is not running takes no work
    runner_of(app).start()
    assert app.test_client().post("/runs/1/trigger", headers=auth_header(7)).status_code == 200
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(1)) == 2)
    assert runner_of(app).in_flight.wait_settled(["1"], timeout=5)
    # Depth 1: the first step and one chained step; the third waits (no poll for an hour).
    assert steps.executed("1") == [0, 1]


def test_max_chain_depth_zero_disables_chaining(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    steps = ScriptedSteps()
    orchestrator.add_run(1, [guidance_step("fully-automated")] * 3)
    app = scripted_app(make_app, orchestrator, steps, MAX_CHAIN_DEPTH=0, POLLING_ENABLED=False)
    runner_of(app).start()
    assert app.test_client().post("/runs/1/trigger", headers=auth_header(7)).status_code == 200
    assert runner_of(app).in_flight.wait_settled(["1"], timeout=5) and steps.calls
    assert steps.executed("1") == [0]


def test_a_next_step_that_does_not_advance_the_run_stops_the_chain(
    make_app: MakeApp, orchestrator: FakeOrchestrator, caplog: pytest.LogCaptureFixture
) -> None:
    steps = ScriptedSteps()
    run = orchestrator.add_run(1, [guidance_step("fully-automated")] * 3)
    orchestrator.update_answer = lambda body, answer: (
        run.envelope() | {"workflowHistory": [{**run.history[0], "done": False}]}
    )
    app = scripted_app(make_app, orchestrator, steps, POLLING_ENABLED=False)
    runner_of(app).start()
    app.test_client().post("/runs/1/trigger", headers=auth_header(7))
    assert runner_of(app).in_flight.wait_settled(["1"], timeout=5) and steps.calls
    assert steps.executed("1") == [0]
    assert any("unexpected next step" in r.message for r in caplog.records)


def test_pending_data_goes_to_the_first_step_of_a_chain_only(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    steps = ScriptedSteps()
    orchestrator.add_run(1, [guidance_step("fully-automated")] * 3)
    app = scripted_app(make_app, orchestrator, steps, POLLING_ENABLED=False)
    runner_of(app).start()
    response = app.test_client().post(
        "/runs/1/trigger", json={"pendingData": {"userInput": "hi"}}, headers=auth_header(7)
    )
    assert response.status_code == 200
    assert orchestrator.wait_until(lambda: orchestrator.runs["1"].finished)
    assert [c.pending_data for c in steps.calls] == [{"userInput": "hi"}, None, None]


def test_the_trigger_answers_before_the_step_executes(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    steps = ScriptedSteps()
    steps.gate.clear()
    orchestrator.add_run(1, [guidance_step("manual")])
    app = scripted_app(make_app, orchestrator, steps, POLLING_ENABLED=False)
    runner_of(app).start()
    response = app.test_client().post("/runs/1/trigger", headers=auth_header(7))
    assert response.status_code == 200
    assert steps.entered.wait(5)
    assert orchestrator.updates(1) == []  # the step is still running
    steps.gate.set()
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(1)) == 1)


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (
            lambda step: (_ for _ in ()).throw(StepStateError("bad state")),
            "An unexpected error occurred while processing this step.",
        ),
        (
            lambda step: (_ for _ in ()).throw(RuntimeError("kaboom with secrets")),
            "Unexpected error during step execution",
        ),
    ],
    ids=["domain-error", "unexpected-error"],
)
def test_a_failing_step_becomes_an_error_outcome(
    make_app: MakeApp,
    orchestrator: FakeOrchestrator,
    behaviour: Callable[[StepExecutor], StepOutcome],
    message: str,
) -> None:
    steps = ScriptedSteps(behaviour=behaviour)
    orchestrator.add_run(1, [guidance_step("manual")])
    runner_of(scripted_app(make_app, orchestrator, steps)).start()
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(1)) == 1)
    update = orchestrator.updates(1)[0]
    assert update["executionStatus"] == {"type": "error", "message": message}
    assert update["stepUpdate"]["attributes"]["context"] == {"status": "error", "error": message}


def test_a_step_past_its_timeout_reports_the_timeout_error(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    steps = ScriptedSteps()
    steps.gate.clear()
    orchestrator.add_run(1, [guidance_step("manual")])
    runner_of(scripted_app(make_app, orchestrator, steps, STEP_TIMEOUT_S=0.2)).start()
    try:
        assert orchestrator.wait_until(lambda: len(orchestrator.updates(1)) == 1)
        assert orchestrator.updates(1)[0]["executionStatus"] == {
            "type": "error",
            "message": "The step took too long to complete. Please try again, or contact your "
            "administrator if the problem persists.",
        }
    finally:
        steps.gate.set()


def test_an_unreported_outcome_ends_the_chain_without_crashing(
    make_app: MakeApp, orchestrator: FakeOrchestrator, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator.fail(f"{API}/update-step", 400, times=1)  # not transient: no retry
    orchestrator.add_run(1, [guidance_step("manual")])
    app = make_app(POLLING_ENABLED=False)
    runner_of(app).start()
    app.test_client().post("/runs/1/trigger", headers=auth_header(7))
    assert orchestrator.wait_until(lambda: orchestrator.count(f"{API}/update-step") == 1)
    assert runner_of(app).in_flight.wait_settled(["1"], timeout=5)
    assert any("Failed to report step outcome" in r.message for r in caplog.records)
    assert runner_of(app).state is RunnerState.RUNNING


def test_transient_update_step_failures_are_retried(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    orchestrator.fail(f"{API}/update-step", 503, times=2)
    orchestrator.add_run(1, [guidance_step("manual")])
    runner_of(make_app()).start()
    assert orchestrator.wait_until(lambda: orchestrator.count(f"{API}/update-step") == 3)
    assert orchestrator.runs["1"].history[0]["context"] == {"status": "awaiting-input"}


# --- drain -------------------------------------------------------------------------------------


def test_stop_drains_a_chain_in_flight_then_stops(
    make_app: MakeApp, orchestrator: FakeOrchestrator
) -> None:
    steps = ScriptedSteps()
    steps.gate.clear()
    orchestrator.add_run(1, [guidance_step("fully-automated")] * 3)
    app = scripted_app(make_app, orchestrator, steps)
    runner = runner_of(app)
    runner.start()
    assert steps.entered.wait(5)

    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    assert eventually(lambda: runner.state is RunnerState.DRAINING)
    health = app.test_client().get("/health")
    assert health.json == {"state": "draining"}
    assert health.status_code == 200
    steps.gate.set()
    stopper.join(10)

    assert runner.state is RunnerState.STOPPED
    # The running step finished and reported; the chain then yielded instead of going on.
    assert [u["stepUpdate"]["stepIndex"] for u in orchestrator.updates(1)] == [0]
    assert steps.executed("1") == [0]


def test_a_drain_past_its_deadline_gives_up_and_says_which_runs(
    make_app: MakeApp, orchestrator: FakeOrchestrator, caplog: pytest.LogCaptureFixture
) -> None:
    steps = ScriptedSteps()
    steps.gate.clear()
    orchestrator.add_run(1, [guidance_step("manual")])
    runner = runner_of(scripted_app(make_app, orchestrator, steps, STOP_TIMEOUT_S=0.2))
    runner.start()
    assert steps.entered.wait(5)
    try:
        runner.stop()
        assert runner.state is RunnerState.STOPPED
        drained = [r for r in caplog.records if r.message == "Drain timeout — runs still in flight"]
        assert drained and drained[0].run_ids == ["1"]  # type: ignore[attr-defined]
    finally:
        steps.gate.set()

"""``/metrics`` and ``/ready`` in one process: what the runner and its ports record, the token,
per-app registries, and readiness turning red for each reason (and green again)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from executor import WorkflowExecutor, runner_of
from executor.adapters.stores.memory import MemoryRunStore
from executor.domain.executions import StepExecutionData
from executor.errors import ConfigurationError, RunStoreError
from executor.extension import executor_state
from tests.conftest import auth_header, base_config, services_for
from tests.fakes.orchestrator import API, FakeOrchestrator, guidance_step
from tests.scraping import total, value
from tests.waiting import eventually

VERSION_HEADER = "X-Executor-Version"
# Generous: a loaded CI machine must not turn a healthy poll loop red.
READY = {"READY_POLL_MAX_AGE_S": 3}
CHECKS = ("runner", "runStore", "orchestratorPoll")


def scrape(app: Flask, **headers: str) -> str:
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=")
    assert response.headers[VERSION_HEADER]
    return response.get_data(as_text=True)


def ready(app: Flask, prefix: str = "") -> tuple[int, dict[str, Any]]:
    response = app.test_client().get(f"{prefix}/ready")
    assert response.headers[VERSION_HEADER]
    return response.status_code, response.get_json()


# --- /metrics -------------------------------------------------------------------------------------


def test_a_polled_run_is_counted_from_poll_to_step_and_port_calls(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app()
    orchestrator.add_run(1, [guidance_step("fully-automated")])
    runner_of(app).start()
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(1)) == 1)

    def counted() -> bool:
        text = scrape(app)
        return value(text, "workflow_executor_chain_depth_steps_count") == 1

    assert eventually(counted)
    text = scrape(app)
    assert value(text, "workflow_executor_polls_total", result="ok") >= 1
    assert value(text, "workflow_executor_polls_total", result="failed") == 0
    assert value(text, "workflow_executor_runs_claimed_total", source="poll") == 1
    assert value(text, "workflow_executor_runs_claimed_total", source="trigger") == 0
    status = orchestrator.updates(1)[0]["executionStatus"]["type"]
    assert status == "awaiting-input"
    assert (
        value(text, "workflow_executor_steps_executed_total", step_type="guidance", status=status)
        == 1
    )
    assert total(text, "workflow_executor_steps_executed_total") == 1
    assert value(text, "workflow_executor_step_duration_seconds_count", step_type="guidance") == 1
    assert value(text, "workflow_executor_chain_depth_steps_sum") == 1
    assert value(text, "workflow_executor_runs_in_flight") == 0
    assert value(text, "workflow_executor_poll_consecutive_failures") == 0
    assert value(text, "workflow_executor_last_successful_poll_timestamp_seconds") > 0
    port_calls = "workflow_executor_port_call_duration_seconds_count"
    assert value(text, port_calls, port="orchestrator", operation="fetch_pending_runs") >= 1
    assert value(text, port_calls, port="orchestrator", operation="report_outcome") == 1
    assert value(text, port_calls, port="run_store", operation="acquire") == 1
    assert value(text, port_calls, port="run_store", operation="release") == 1
    assert value(text, port_calls, port="agent", operation="probe") == 1
    # The guidance step drafts its note from the record and the AI: neither is there here.
    errors = "workflow_executor_port_call_errors_total"
    assert value(text, port_calls, port="agent", operation="get_record") == 1
    assert value(text, errors, port="agent", operation="get_record") == 1
    assert value(text, port_calls, port="ai_model", operation="invoke") == 1
    assert value(text, errors, port="ai_model", operation="invoke") == 1
    assert value(text, port_calls, port="activity_log", operation="create") == 1
    assert total(text, errors) == 2


def test_a_triggered_run_is_counted(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app(POLLING_ENABLED=False)
    runner_of(app).start()
    orchestrator.add_run(42, [guidance_step("manual")])
    response = app.test_client().post(
        "/runs/42/trigger", json={"pendingData": {"userInput": "hi"}}, headers=auth_header(7)
    )
    assert response.status_code == 200
    steps = "workflow_executor_steps_executed_total"
    assert eventually(
        lambda: value(scrape(app), steps, step_type="guidance", status="success") == 1
    )
    text = scrape(app)
    assert value(text, "workflow_executor_runs_claimed_total", source="trigger") == 1
    assert value(text, "workflow_executor_runs_claimed_total", source="poll") == 0
    assert value(text, "workflow_executor_polls_total", result="ok") == 0
    port_calls = "workflow_executor_port_call_duration_seconds_count"
    assert value(text, port_calls, port="orchestrator", operation="claim_run") == 1
    assert value(text, port_calls, port="run_store", operation="save_step_execution") == 1


def test_chain_depth_counts_the_steps_one_chain_executed(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app(POLLING_ENABLED=False)
    runner_of(app).start()
    # The input completes the first step; the orchestrator hands back the second, which waits.
    orchestrator.add_run(42, [guidance_step("manual"), guidance_step("manual")])
    response = app.test_client().post(
        "/runs/42/trigger", json={"pendingData": {"userInput": "hi"}}, headers=auth_header(7)
    )
    assert response.status_code == 200
    assert eventually(lambda: value(scrape(app), "workflow_executor_chain_depth_steps_count") == 1)
    text = scrape(app)
    assert value(text, "workflow_executor_chain_depth_steps_sum") == 2
    assert value(text, "workflow_executor_chain_depth_steps_bucket", le="1.0") == 0
    assert value(text, "workflow_executor_chain_depth_steps_bucket", le="2.0") == 1
    steps = "workflow_executor_steps_executed_total"
    assert value(text, steps, step_type="guidance", status="success") == 1
    assert value(text, steps, step_type="guidance", status="awaiting-input") == 1


def test_in_flight_counts_a_run_while_its_report_is_held(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app(POLLING_ENABLED=False)
    runner_of(app).start()
    orchestrator.add_run(42, [guidance_step("manual")])
    orchestrator.delay(f"{API}/update-step", 1.0)
    response = app.test_client().post(
        "/runs/42/trigger", json={"pendingData": {"userInput": "hi"}}, headers=auth_header(7)
    )
    assert response.status_code == 200
    assert value(scrape(app), "workflow_executor_runs_in_flight") == 1
    assert eventually(lambda: value(scrape(app), "workflow_executor_runs_in_flight") == 0)


def test_failed_polls_show_the_backoff_then_recover(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    orchestrator.fail(f"{API}/pending-run", 500, times=100)
    app = make_app(POLLING_INTERVAL_S=0.02, POLL_BACKOFF_MAX_S=0.05)
    runner_of(app).start()
    assert eventually(
        lambda: value(scrape(app), "workflow_executor_poll_consecutive_failures") >= 2
    )
    text = scrape(app)
    assert value(text, "workflow_executor_polls_total", result="failed") >= 2
    assert value(text, "workflow_executor_poll_backoff_seconds") > 0
    errors = "workflow_executor_port_call_errors_total"
    assert value(text, errors, port="orchestrator", operation="fetch_pending_runs") >= 2

    orchestrator.clear_faults()
    assert eventually(
        lambda: value(scrape(app), "workflow_executor_poll_consecutive_failures") == 0
    )
    text = scrape(app)
    assert value(text, "workflow_executor_poll_backoff_seconds") == 0
    assert value(text, "workflow_executor_polls_total", result="ok") >= 1


class FailingWrites(MemoryRunStore):
    def save_step_execution(self, run_id: str, data: StepExecutionData) -> None:
        raise RunStoreError("disk full")


def test_run_store_errors_are_counted(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app(
        POLLING_ENABLED=False, services=services_for(orchestrator, store=FailingWrites())
    )
    runner_of(app).start()
    orchestrator.add_run(42, [guidance_step("manual")])
    response = app.test_client().post(
        "/runs/42/trigger", json={"pendingData": {"userInput": "hi"}}, headers=auth_header(7)
    )
    assert response.status_code == 200
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
    errors = "workflow_executor_port_call_errors_total"
    assert eventually(
        lambda: value(scrape(app), errors, port="run_store", operation="save_step_execution") == 1
    )
    text = scrape(app)
    assert (
        value(text, "workflow_executor_steps_executed_total", step_type="guidance", status="error")
        == 1
    )


def test_each_app_has_metrics_of_its_own(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    busy, idle = make_app(POLLING_ENABLED=False), make_app(POLLING_ENABLED=False)
    runner_of(busy).start()
    orchestrator.add_run(42, [guidance_step("manual")])
    response = busy.test_client().post(
        "/runs/42/trigger", json={"pendingData": {"userInput": "hi"}}, headers=auth_header(7)
    )
    assert response.status_code == 200
    claimed = "workflow_executor_runs_claimed_total"
    assert value(scrape(busy), claimed, source="trigger") == 1
    assert value(scrape(idle), claimed, source="trigger") == 0
    assert executor_state(busy).metrics.registry is not executor_state(idle).metrics.registry


def test_labels_never_carry_run_or_user_ids(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app()
    orchestrator.add_run(987654321, [guidance_step("fully-automated")], user_id=123456789)
    runner_of(app).start()
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(987654321)) == 1)
    text = scrape(app)
    assert "987654321" not in text
    assert "123456789" not in text


def test_a_long_metrics_token_works_too(make_app: Callable[..., Flask]) -> None:
    token = "t" * 2000
    app = make_app(METRICS_TOKEN=token)
    assert "workflow_executor_polls_total" in scrape(app, Authorization=f"Bearer {token}")
    refused = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}x"})
    assert refused.status_code == 401


def test_the_token_guards_metrics_when_set(make_app: Callable[..., Flask]) -> None:
    app = make_app(METRICS_TOKEN="s3cret-scrape-token")
    client = app.test_client()
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic s3cret-scrape-token"},
        {"Authorization": "Bearer " + "x" * 5000},
    ):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.get_json() == {"error": "Unauthorized"}
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.headers[VERSION_HEADER]
    text = scrape(app, Authorization="Bearer s3cret-scrape-token")
    assert "workflow_executor_polls_total" in text
    # /ready and /health stay open.
    assert client.get("/health").status_code == 503  # not started
    assert client.get("/ready").status_code == 503


def test_metrics_are_open_without_a_token(make_app: Callable[..., Flask]) -> None:
    assert "workflow_executor_runs_in_flight" in scrape(make_app())


# --- /ready ---------------------------------------------------------------------------------------


def test_ready_when_running_and_not_when_stopped(make_app: Callable[..., Flask]) -> None:
    app = make_app(**READY)
    status, body = ready(app)
    assert status == 503
    assert body["checks"]["runner"] == "runner is idle"

    runner_of(app).start()
    assert eventually(lambda: ready(app)[0] == 200)
    assert ready(app) == (
        200,
        {"ready": True, "checks": {"runner": "ok", "runStore": "ok", "orchestratorPoll": "ok"}},
    )

    runner_of(app).stop()
    status, body = ready(app)
    assert status == 503
    assert body == {
        "ready": False,
        "checks": {
            "runner": "runner is stopped",
            "runStore": "skipped",
            "orchestratorPoll": "not polling (runner is stopped)",
        },
    }


def test_not_ready_while_draining(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app(POLLING_ENABLED=False, **READY)
    runner = runner_of(app)
    runner.start()
    orchestrator.add_run(42, [guidance_step("manual")])
    orchestrator.delay(f"{API}/update-step", 1.5)  # keeps the run in flight while we look
    response = app.test_client().post(
        "/runs/42/trigger", json={"pendingData": {"userInput": "hi"}}, headers=auth_header(7)
    )
    assert response.status_code == 200
    stopping = threading.Thread(target=runner.stop)
    stopping.start()
    try:
        assert eventually(lambda: runner.state.value == "draining")
        status, body = ready(app)
        assert status == 503
        assert body["checks"]["runner"] == "runner is draining"
        assert app.test_client().get("/health").status_code == 200  # alive all the same
    finally:
        stopping.join(15)


class PingFails(MemoryRunStore):
    def ping(self) -> None:
        raise RunStoreError("connection refused to db.internal:5432")


class PingHangs(MemoryRunStore):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1
        self.release.wait(30)


def test_not_ready_when_the_store_fails_and_no_detail_leaks(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app(services=services_for(orchestrator, store=PingFails()), **READY)
    runner_of(app).start()
    status, body = ready(app)
    assert status == 503
    assert body["checks"]["runner"] == "ok"
    assert body["checks"]["runStore"] == "run store is failing (see the logs)"
    assert "db.internal" not in str(body)


def test_not_ready_when_the_store_does_not_answer_in_time(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    store = PingHangs()
    app = make_app(
        services=services_for(orchestrator, store=store), READY_STORE_TIMEOUT_S=0.2, **READY
    )
    runner_of(app).start()
    try:
        for _ in range(3):
            status, body = ready(app)
            assert status == 503
            assert body["checks"]["runStore"] == "run store did not answer within 0.2 s"
        assert store.pings == 1  # a hanging ping is waited on again, not piled up
    finally:
        store.release.set()
    assert eventually(lambda: ready(app)[0] == 200)


def test_a_frozen_orchestrator_turns_readiness_red_until_it_answers_again(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app(READY_POLL_MAX_AGE_S=1)
    runner_of(app).start()
    assert eventually(lambda: ready(app)[0] == 200)

    orchestrator.frozen.clear()  # the next poll hangs: the loop stalls
    try:
        assert eventually(lambda: ready(app)[0] == 503, timeout=15)
        status, body = ready(app)
        assert (status, body["ready"]) == (503, False)
        assert body["checks"]["runner"] == "ok"
        assert body["checks"]["runStore"] == "ok"
        assert body["checks"]["orchestratorPoll"].startswith("no successful poll for ")
        assert body["checks"]["orchestratorPoll"].endswith(" s (limit 1 s)")
        assert app.test_client().get("/health").status_code == 200  # alive, just not ready
    finally:
        orchestrator.frozen.set()
    assert eventually(lambda: ready(app)[0] == 200, timeout=15)


def test_a_poll_loop_waiting_for_its_chains_stays_ready(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator
) -> None:
    app = make_app(READY_POLL_MAX_AGE_S=0.3)
    orchestrator.add_run(1, [guidance_step("manual")])
    orchestrator.delay(f"{API}/update-step", 2.0)  # the chain the poll started takes a while
    runner = runner_of(app)
    runner.start()
    # Polled, not waited on: the fake notifies its waiters only once a delayed answer is sent.
    assert eventually(lambda: orchestrator.count(f"{API}/update-step") == 1)
    poller = runner.poller
    assert poller is not None and poller.last_success_at is not None
    last_success = poller.last_success_at
    # Past the limit with no new poll: the protocol has the loop wait for its chains.
    assert eventually(lambda: time.monotonic() - last_success > 0.5)
    assert poller.waiting_for_chains
    assert ready(app) == (200, {"ready": True, "checks": dict.fromkeys(CHECKS, "ok")})


def test_the_poll_check_is_skipped_without_polling(make_app: Callable[..., Flask]) -> None:
    app = make_app(POLLING_ENABLED=False)
    runner_of(app).start()
    checks = {"runner": "ok", "runStore": "ok", "orchestratorPoll": "skipped"}
    assert ready(app) == (200, {"ready": True, "checks": checks})


def test_both_routes_live_under_the_host_apps_prefix(orchestrator: FakeOrchestrator) -> None:
    host = Flask("host_app")
    WorkflowExecutor(host, url_prefix="/executor", config=base_config(orchestrator, **READY))
    runner = runner_of(host)
    runner.start()
    try:
        client = host.test_client()
        assert eventually(lambda: client.get("/executor/ready").status_code == 200)
        metrics = client.get("/executor/metrics")
        assert metrics.status_code == 200
        assert b"workflow_executor_polls_total" in metrics.data
        assert client.get("/ready").status_code == 404
        assert client.get("/metrics").status_code == 404
    finally:
        runner.stop()


@pytest.mark.parametrize("path", ["/metrics", "/ready"])
def test_other_methods_are_refused(make_app: Callable[..., Flask], path: str) -> None:
    response = make_app().test_client().post(path, headers=auth_header(7))
    assert response.status_code == 405
    assert response.get_json() == {"error": "Method not allowed"}


# --- PROMETHEUS_MULTIPROC_DIR outside gunicorn ---------------------------------------------------


def test_a_single_process_never_sums_the_files_of_processes_before_it(
    make_app: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image-wide PROMETHEUS_MULTIPROC_DIR: a process that ran before left its gauges there,
    and no gunicorn hook cleared them."""
    earlier = (
        "from prometheus_client import Gauge\n"
        "Gauge('workflow_executor_runs_in_flight', 'x', multiprocess_mode='livesum').set(3)\n"
    )
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", earlier], env=environment, check=True, timeout=60)
    assert list(tmp_path.glob("*.db"))

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = scrape(make_app())
    assert "workflow_executor_runs_in_flight 0.0" in text
    assert "workflow_executor_runs_in_flight 3.0" not in text


def test_a_multiprocess_directory_that_does_not_exist_is_a_clear_error(
    make_app: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(
        ConfigurationError, match=r"PROMETHEUS_MULTIPROC_DIR: .* is not a directory"
    ):
        make_app()

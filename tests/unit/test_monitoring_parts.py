"""The monitoring parts on their own: port timing, per-app registries, the backoff ceiling, the
poll-age check and the readiness settings."""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from executor.adapters.stores.memory import MemoryRunStore
from executor.config import load_settings
from executor.domain.outcomes import StepStatus
from executor.domain.steps import StepType
from executor.errors import RunStoreError
from executor.monitoring.exposition import warn_if_workers_are_counted_apart
from executor.monitoring.metrics import ExecutorMetrics
from executor.monitoring.ports import TimedPort, port_operations, timed, timed_services
from executor.monitoring.readiness import OK, BoundedPing
from executor.ports import RunLeases, RunStore
from executor.runner.poller import Backoff
from tests.conftest import services_for
from tests.scraping import total, value
from tests.waiting import eventually

REQUIRED = {
    "FOREST_ENV_SECRET": "0123456789abcdef" * 4,
    "FOREST_AUTH_SECRET": "auth-secret-shared-with-the-agent",
    "AGENT_URL": "http://agent.example:3310",
}


def text(metrics: ExecutorMetrics) -> str:
    return generate_latest(metrics.registry).decode()


class FlakyStore(MemoryRunStore):
    def __init__(self) -> None:
        super().__init__()
        self.note = "not a port operation"

    def delete_step_execution(self, run_id: str, step_index: int) -> None:
        raise RunStoreError("disk full")


def test_a_timed_port_times_its_operations_and_counts_what_raises() -> None:
    metrics = ExecutorMetrics()
    store = timed(FlakyStore(), "run_store", metrics)
    store.save_step_execution("1", {"type": "guidance", "stepIndex": 0})  # type: ignore[typeddict-item]
    assert store.get_step_executions("1")[0]["stepIndex"] == 0
    with pytest.raises(RunStoreError):
        store.delete_step_execution("1", 0)
    assert store.note == "not a port operation"  # plain attributes pass through

    out = text(metrics)
    calls = "workflow_executor_port_call_duration_seconds_count"
    errors = "workflow_executor_port_call_errors_total"
    assert value(out, calls, port="run_store", operation="save_step_execution") == 1
    assert value(out, calls, port="run_store", operation="get_step_executions") == 1
    assert value(out, calls, port="run_store", operation="delete_step_execution") == 1
    assert value(out, errors, port="run_store", operation="delete_step_execution") == 1
    assert total(out, errors) == 1


def test_operations_are_the_ports_own_methods() -> None:
    operations = port_operations(RunStore, RunLeases)
    assert {"init", "close", "ping", "get_step_executions", "acquire", "renew", "release"} <= (
        operations
    )
    assert not any(name.startswith("_") for name in operations)


def test_services_are_timed_once_even_when_timed_again() -> None:
    services = services_for(_Nowhere())  # type: ignore[arg-type]
    metrics = ExecutorMetrics()
    once = timed_services(services, metrics)
    twice = timed_services(once, metrics)
    assert isinstance(once.workflow, TimedPort)
    assert twice.workflow is once.workflow
    assert twice.run_store is once.run_store


class _Nowhere:
    url = "http://127.0.0.1:9"
    agent_url = "http://127.0.0.1:9"


def test_every_app_registry_is_its_own() -> None:
    first, second = ExecutorMetrics(), ExecutorMetrics()  # no duplicate-name error
    first.run_claimed("poll")
    first.step_executed(StepType.CONDITION, StepStatus.SUCCESS, 0.2)
    assert value(text(first), "workflow_executor_runs_claimed_total", source="poll") == 1
    assert value(text(second), "workflow_executor_runs_claimed_total", source="poll") == 0
    steps = "workflow_executor_steps_executed_total"
    # Known label values are there from the start, at 0.
    assert value(text(second), steps, step_type="condition", status="success") == 0
    assert f'{steps}{{status="success",step_type="condition"}} 0.0' in text(second)


def test_poll_results_set_and_reset_the_backoff_gauges() -> None:
    metrics = ExecutorMetrics()
    metrics.poll_failed(3, 4.0)
    out = text(metrics)
    assert value(out, "workflow_executor_poll_consecutive_failures") == 3
    assert value(out, "workflow_executor_poll_backoff_seconds") == 4
    before = time.time()
    metrics.poll_succeeded()
    out = text(metrics)
    assert value(out, "workflow_executor_poll_consecutive_failures") == 0
    assert value(out, "workflow_executor_poll_backoff_seconds") == 0
    assert value(out, "workflow_executor_last_successful_poll_timestamp_seconds") >= before
    assert value(out, "workflow_executor_polls_total", result="failed") == 1
    assert value(out, "workflow_executor_polls_total", result="ok") == 1


def test_the_backoff_ceiling_bounds_the_next_delay() -> None:
    backoff = Backoff(1.0, 8.0, rng=random.Random(7))
    assert backoff.ceiling() == 1.0
    for expected in (1, 2, 4, 8, 8):
        backoff.record_failure()
        assert backoff.ceiling() == expected
        assert expected / 2 <= backoff.next_delay() <= expected


def test_a_bounded_ping_reports_ok_failure_and_timeout() -> None:
    assert BoundedPing(lambda: None, 1, what="run store").check() == OK

    def fails() -> None:
        raise RunStoreError("password authentication failed for user admin")

    assert BoundedPing(fails, 1, what="run store").check() == "run store is failing (see the logs)"

    release = threading.Event()
    calls: list[int] = []

    def hangs() -> None:
        calls.append(1)
        release.wait(10)

    ping = BoundedPing(hangs, 0.05, what="run store")
    assert ping.check() == "run store did not answer within 0.05 s"
    assert ping.check() == "run store did not answer within 0.05 s"
    assert len(calls) == 1
    release.set()
    assert eventually(lambda: ping.check() == OK)  # the stuck attempt ends; the next one answers


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, 3 * 30 + 10), ({"POLLING_INTERVAL_S": 2}, 16), ({"READY_POLL_MAX_AGE_S": 45}, 45)],
)
def test_the_poll_age_limit_defaults_to_a_few_intervals(
    given: dict[str, Any], expected: float
) -> None:
    settings = load_settings({**REQUIRED, **given}, environ={}, data_dir="/srv/data")
    assert settings.ready_poll_max_age_s == expected
    assert settings.ready_store_timeout_s == 2
    assert settings.metrics_token is None


def test_the_metrics_token_comes_from_the_environment_and_is_never_printed() -> None:
    settings = load_settings(
        REQUIRED, environ={"METRICS_TOKEN": " scrape-me "}, data_dir="/srv/data"
    )
    assert settings.metrics_token == "scrape-me"
    assert "scrape-me" not in repr(settings)


def test_gunicorn_without_a_metrics_directory_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    log = logging.getLogger("test.wsgi")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delitem(sys.modules, "gunicorn.arbiter", raising=False)
    warn_if_workers_are_counted_apart(log)  # not under gunicorn: nothing to say
    assert caplog.records == []

    monkeypatch.setitem(sys.modules, "gunicorn.arbiter", types.ModuleType("gunicorn.arbiter"))
    warn_if_workers_are_counted_apart(log)
    assert "/metrics shows only the worker that answers" in caplog.text

    caplog.clear()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    warn_if_workers_are_counted_apart(log)
    assert caplog.records == []

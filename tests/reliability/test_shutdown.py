"""SIGTERM to ``python -m executor`` with runs in flight: a drain that finishes in time reports
every run and flushes the audit trail; a drain that runs out of time leaves the rest unreported
(never half-reported) for the orchestrator to offer again once their leases run out, also when
the runner is stopped by a host that lives on."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from executor.adapters.stores.sql import SqlRunStore
from executor.extension import runner_of
from executor.runner import RunnerState
from tests.conftest import auth_header, services_for
from tests.fakes.agent import FakeAgent
from tests.fakes.orchestrator import FakeOrchestrator, record_step
from tests.processes import executor_environment
from tests.reliability.conftest import BuildApp, StartExecutor
from tests.reliability.support import PENDING, ExecutorProcess
from tests.waiting import eventually

STOP_TIMEOUT_S = 20
READ = [record_step("get-data", fieldNames=["name"])]


def add_runs_in_one_poll(orchestrator: FakeOrchestrator, runs: dict[int, str]) -> None:
    """Add runs (id -> record id) so that the executor's next poll gets them all at once: that poll
    is held at the orchestrator while they are added (the poller waits for the chains it started
    before it polls again, so runs split over two polls would not all be in flight)."""
    orchestrator.frozen.clear()
    polls = orchestrator.count(PENDING)
    assert eventually(lambda: orchestrator.count(PENDING) > polls)
    for run_id, record_id in runs.items():
        orchestrator.add_run(run_id, READ, record_id=record_id)
    orchestrator.frozen.set()


def reports(orchestrator: FakeOrchestrator) -> Counter[int]:
    return Counter(body["runId"] for body in orchestrator.updates())


def drain_started(executor: ExecutorProcess) -> bool:
    return executor.logged(lambda ms: "Executor draining" in ms)


@pytest.mark.slow
def test_sigterm_drains_50_runs_in_flight_reports_each_once_and_flushes_the_audit_trail(
    orchestrator: FakeOrchestrator, agent: FakeAgent, tmp_path: Path, executors: StartExecutor
) -> None:
    runs = range(1, 51)
    env = executor_environment(
        orchestrator,
        tmp_path,
        MAX_CONCURRENT_RUNS="50",
        STOP_TIMEOUT_S=str(STOP_TIMEOUT_S),
        HTTP_HOST="127.0.0.1",
        HTTP_PORT="0",
    )
    executor = executors(env)
    executor.wait_running()
    agent.frozen.clear()  # from now on (the start-up probe is behind us) the agent holds requests
    # Audit status updates are slow, so they are still pending when the runs have reported.
    orchestrator.delay("/api/activity-logs-requests/idx", 0.05)
    add_runs_in_one_poll(orchestrator, dict.fromkeys(runs, "1"))
    assert eventually(lambda: agent.count("/forest/customers/1", "GET") == 50, timeout=30)

    executor.signal(signal.SIGTERM)
    assert drain_started(executor), executor.log.read_text()
    assert orchestrator.updates() == []  # all 50 are in flight as the drain begins
    draining = time.monotonic()
    agent.frozen.set()
    assert executor.wait(timeout=STOP_TIMEOUT_S + 30) == 0
    assert time.monotonic() - draining < STOP_TIMEOUT_S

    assert reports(orchestrator) == Counter(dict.fromkeys(runs, 1))
    contexts = [u["stepUpdate"]["attributes"]["context"] for u in orchestrator.updates()]
    assert all(context == {"status": "success"} for context in contexts)
    logs = orchestrator.activity_logs
    assert len(logs) == 50
    assert [e["status"] for e in logs] == ["completed"] * 50  # flushed before the exit
    messages = executor.messages()
    assert "Drain timeout — runs still in flight" not in messages
    assert "Activity log status updates still pending" not in messages
    assert messages[-1] == "Executor stopped"


def lease_holders(database: Path) -> list[str]:
    with closing(sqlite3.connect(database)) as conn:
        rows = conn.execute(
            "SELECT run_id FROM workflow_run_leases WHERE expires_at >= ?", (time.time(),)
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.slow
def test_a_drain_past_its_deadline_leaves_the_rest_unreported_for_a_later_executor(
    orchestrator: FakeOrchestrator, agent: FakeAgent, tmp_path: Path, executors: StartExecutor
) -> None:
    quick, slow = range(1, 6), range(6, 11)
    env = executor_environment(
        orchestrator,
        tmp_path,
        STOP_TIMEOUT_S="1",
        RUN_LEASE_TTL_S="1",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT="0",
    )
    executor = executors(env, "first")
    executor.wait_running()
    agent.frozen.clear()
    agent.delay("/forest/customers/1", 60)  # the slow runs are still reading at the deadline
    add_runs_in_one_poll(orchestrator, {**dict.fromkeys(quick, "2"), **dict.fromkeys(slow, "1")})
    assert eventually(
        lambda: (
            agent.count("/forest/customers/2", "GET") == 5
            and agent.count("/forest/customers/1", "GET") == 5
        ),
        timeout=30,
    )

    executor.signal(signal.SIGTERM)
    assert drain_started(executor), executor.log.read_text()
    agent.frozen.set()
    assert executor.wait(timeout=30) == 0

    # The quick runs finished within the drain and reported; the slow ones left no trace.
    assert reports(orchestrator) == Counter(dict.fromkeys(quick, 1))
    timeout = next(
        r for r in executor.records() if r["message"] == "Drain timeout — runs still in flight"
    )
    assert timeout["run_ids"] == sorted(str(r) for r in slow)
    database = tmp_path / "runs.sqlite3"
    with closing(sqlite3.connect(database)) as conn:
        rows = conn.execute("SELECT run_id FROM workflow_step_executions").fetchall()
    stored = {int(row[0]) for row in rows}
    assert stored == set(quick)  # nothing half-written for the slow runs
    assert executor.messages()[-1] == "Executor stopped"

    # Their leases run out and the orchestrator offers them again: a new executor reports them.
    agent.delay("/forest/customers/1", 0)
    later = executors(env, "later")
    later.wait_running()
    assert eventually(lambda: lease_holders(database) == [], timeout=10)
    assert reports(orchestrator) == Counter(dict.fromkeys(quick, 1))  # nothing arrived meanwhile
    for run_id in slow:
        orchestrator.runs[str(run_id)].claimed = False
    assert orchestrator.wait_until(lambda: len(reports(orchestrator)) == 10, timeout=30), (
        later.log.read_text()
    )
    assert reports(orchestrator) == Counter(dict.fromkeys([*quick, *slow], 1))
    assert all(
        u["stepUpdate"]["attributes"]["context"] == {"status": "success"}
        for u in orchestrator.updates()
    )
    later.signal(signal.SIGTERM)
    assert later.wait(timeout=30) == 0


def test_a_run_abandoned_at_the_drain_deadline_is_never_reported_after_the_stop(
    apps: BuildApp, orchestrator: FakeOrchestrator, agent: FakeAgent, tmp_path: Path
) -> None:
    store = SqlRunStore(f"sqlite:///{tmp_path / 'runs.sqlite3'}")
    app = apps(
        orchestrator,
        services_for(orchestrator, store=store),
        POLLING_ENABLED=False,
        STOP_TIMEOUT_S=0.3,
    )
    runner = runner_of(app)
    runner.start()
    agent.frozen.clear()  # the read is still at the agent when the deadline passes
    orchestrator.add_run(1, READ, record_id="1")
    assert app.test_client().post("/runs/1/trigger", headers=auth_header(7)).status_code == 200
    assert eventually(lambda: agent.count("/forest/customers/1", "GET") == 1)

    runner.stop()  # the host shuts the executor down, and goes on living
    assert runner.state is RunnerState.STOPPED
    agent.frozen.set()  # the abandoned step now gets its answer
    assert runner.in_flight.wait_settled(["1"], timeout=10)  # its chain has ended
    assert orchestrator.updates(1) == []

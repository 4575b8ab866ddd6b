"""The same run triggered twice at once executes once: from two threads of one executor, and on
two executor processes sharing one PostgreSQL run store; and a run that waited in one executor's
queue is not executed there once another executor has run it."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from executor.adapters.stores.sql import SqlRunStore
from executor.extension import runner_of
from tests.conftest import auth_header, services_for
from tests.fakes.agent import FakeAgent
from tests.fakes.orchestrator import API, FakeOrchestrator, guidance_step, record_step
from tests.fakes.steps import ScriptedSteps
from tests.postgres import POSTGRES_URL
from tests.processes import executor_environment
from tests.reliability.conftest import BuildApp, StartExecutor
from tests.waiting import eventually

IN_FLIGHT = {"error": "This step is already running."}
UPDATE = [record_step("update-data", fieldName="tier", value="silver")]


def claims(orchestrator: FakeOrchestrator, run_id: int) -> int:
    path = f"{API}/available-run/{run_id}"
    return sum(1 for request in list(orchestrator.requests) if request.path == path)


def at_once(*calls: Callable[[], tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Run the calls in threads released together; their answers, sorted."""
    barrier = threading.Barrier(len(calls))
    answers: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def run(call: Callable[[], tuple[int, Any]]) -> None:
        barrier.wait()
        answer = call()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(answers, key=lambda a: a[0])


def test_the_same_run_triggered_from_two_threads_executes_once(
    apps: BuildApp, orchestrator: FakeOrchestrator, agent: FakeAgent
) -> None:
    app = apps(orchestrator, POLLING_ENABLED=False)
    runner = runner_of(app)
    runner.start()
    agent.frozen.clear()  # the winner's write is held until both answers are in
    runs = range(1, 11)

    def trigger(run_id: int) -> Callable[[], tuple[int, Any]]:
        def call() -> tuple[int, Any]:
            response = app.test_client().post(f"/runs/{run_id}/trigger", headers=auth_header(7))
            return response.status_code, response.json

        return call

    for run_id in runs:
        orchestrator.add_run(run_id, UPDATE, record_id="1")
        answers = at_once(trigger(run_id), trigger(run_id))
        assert answers == [(200, {"triggered": True}), (400, IN_FLIGHT)], (run_id, answers)
    agent.frozen.set()

    assert runner.in_flight.wait_settled(timeout=10)
    for run_id in runs:
        [report] = orchestrator.updates(run_id)
        assert report["stepUpdate"]["attributes"]["context"] == {"status": "success"}
        assert claims(orchestrator, run_id) == 1  # claimed once
    assert agent.count("/forest/customers/1", "PUT") == len(runs)  # one write per run


@pytest.mark.slow
@pytest.mark.postgres
def test_the_same_run_triggered_on_two_executors_sharing_postgres_executes_once(
    orchestrator: FakeOrchestrator,
    agent: FakeAgent,
    tmp_path: Path,
    executors: StartExecutor,
    pg_schema: str,
) -> None:
    assert POSTGRES_URL
    env = executor_environment(
        orchestrator,
        tmp_path,
        DATABASE_URL=POSTGRES_URL,
        DATABASE_SCHEMA=pg_schema,
        POLLING_ENABLED="false",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT="0",
    )
    first, second = executors(env, "first"), executors(env, "second")
    first.wait_running()
    second.wait_running()
    agent.frozen.clear()  # hold the winner's write until both answers are in
    runs = range(1, 6)

    def trigger(url: str, run_id: int) -> Callable[[], tuple[int, Any]]:
        def call() -> tuple[int, Any]:
            response = httpx.post(f"{url}/runs/{run_id}/trigger", headers=auth_header(7))
            return response.status_code, response.json()

        return call

    for run_id in runs:
        orchestrator.add_run(run_id, UPDATE, record_id="1")
        answers = at_once(trigger(first.url, run_id), trigger(second.url, run_id))
        assert answers == [(200, {"triggered": True}), (400, IN_FLIGHT)], (run_id, answers)
    agent.frozen.set()

    assert orchestrator.wait_until(lambda: len(orchestrator.updates()) == len(runs), timeout=30)
    for run_id in runs:
        [report] = orchestrator.updates(run_id)
        assert report["stepUpdate"]["attributes"]["context"] == {"status": "success"}
        assert claims(orchestrator, run_id) == 1  # the loser never claimed
    assert eventually(lambda: agent.count("/forest/customers/1", "PUT") == len(runs))
    assert len(agent.updates) == len(runs)


def lease_expired(database: Path, run_id: str) -> bool:
    with closing(sqlite3.connect(database)) as conn:
        row = conn.execute(
            "SELECT expires_at FROM workflow_run_leases WHERE run_id = ?", (run_id,)
        ).fetchone()
    return row is None or row[0] < time.time()


def test_a_run_queued_past_its_lease_is_not_executed_again_elsewhere_and_here(
    apps: BuildApp, orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    database = tmp_path / "runs.sqlite3"
    busy, other = ScriptedSteps(), ScriptedSteps()
    busy.gate.clear()  # the first executor's only worker stays on run 1
    first = apps(
        orchestrator,
        services_for(orchestrator, busy, store=SqlRunStore(f"sqlite:///{database}")),
        POLLING_ENABLED=False,
        MAX_CONCURRENT_RUNS=1,
        RUN_LEASE_TTL_S=0.3,
    )
    second = apps(
        orchestrator,
        services_for(orchestrator, other, store=SqlRunStore(f"sqlite:///{database}")),
        POLLING_ENABLED=False,
        RUN_LEASE_TTL_S=0.3,
    )
    runner_of(first).start()
    runner_of(second).start()
    orchestrator.add_run(1, [guidance_step("manual")])
    orchestrator.add_run(2, [guidance_step("manual")])
    assert first.test_client().post("/runs/1/trigger", headers=auth_header(7)).status_code == 200
    assert busy.entered.wait(5)
    # Run 2 is claimed and leased by the first executor, and waits there for a worker...
    assert first.test_client().post("/runs/2/trigger", headers=auth_header(7)).status_code == 200
    # ... longer than its lease: the orchestrator offers it again, and the second executor runs it.
    assert eventually(lambda: lease_expired(database, "2"))
    orchestrator.runs["2"].claimed = False
    assert second.test_client().post("/runs/2/trigger", headers=auth_header(7)).status_code == 200
    assert runner_of(second).in_flight.wait_settled(["2"], timeout=10)
    assert other.executed("2") == [0]

    busy.gate.set()  # the first executor's worker is free again
    assert runner_of(first).in_flight.wait_settled(timeout=10)
    assert busy.executed("2") == []  # not a second time
    assert len(orchestrator.updates(2)) == 1

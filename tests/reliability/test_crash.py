"""A crash in the middle of a mutating step: the executor process (``python -m executor`` on a
SQLite store) is SIGKILLed between the write-ahead mark and the report.

Either while the agent holds the write (the mark says ``executing``), or once the write is done
and stored while its report is on its way (the mark says ``done``, the report is lost). A new
process on the same store gets the step again once the dead process's lease has run out: it never
writes a second time, it reports the interrupted-step error or replays the stored success, and it
still serves everything stored before the crash.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from executor.adapters.stores.sql import SqlRunStore
from tests.conftest import auth_header
from tests.fakes.agent import FakeAgent, collection_schemas
from tests.fakes.orchestrator import record_step
from tests.processes import executor_environment
from tests.reliability.conftest import StartExecutor
from tests.reliability.support import STEP_STATE, UPDATE_STEP, OutageOrchestrator
from tests.waiting import eventually

pytestmark = pytest.mark.slow

WRITE = "/forest/companies/1"  # only the update of step 2 goes there
STEPS = [
    record_step("get-data", fieldNames=["name", "email"]),
    record_step("load-related-record", title="Company", relationName="company"),
    record_step("update-data", selectedRecordStepId="step-1", fieldName="name", value="Acme Corp"),
]
SUCCESS = {"status": "success"}
INTERRUPTED = {"status": "error", "error": STEP_STATE}


@pytest.fixture
def orchestrator(agent: FakeAgent) -> Iterator[OutageOrchestrator]:
    fake = OutageOrchestrator()
    fake.agent_url = agent.url
    fake.collection_schemas = collection_schemas(agent)
    fake.start()
    yield fake
    fake.stop()


def lease_is_free(database: Path, run_id: str) -> bool:
    """Whether no process holds a live lease on the run (read without taking it)."""
    with closing(sqlite3.connect(database)) as conn:
        row = conn.execute(
            "SELECT expires_at FROM workflow_run_leases WHERE run_id = ?", (run_id,)
        ).fetchone()
    return row is None or row[0] < time.time()


@pytest.mark.parametrize(
    ("moment", "phase", "replayed"),
    [
        pytest.param("agent-writing", "executing", INTERRUPTED, id="while-the-agent-writes"),
        pytest.param("report-lost", "done", SUCCESS, id="while-the-report-is-on-its-way"),
    ],
)
def test_a_process_killed_mid_write_never_writes_twice_and_loses_nothing_stored(
    orchestrator: OutageOrchestrator,
    agent: FakeAgent,
    tmp_path: Path,
    executors: StartExecutor,
    moment: str,
    phase: str,
    replayed: dict[str, str],
) -> None:
    database = tmp_path / "runs.sqlite3"
    env = executor_environment(
        orchestrator, tmp_path, RUN_LEASE_TTL_S="1", HTTP_HOST="127.0.0.1", HTTP_PORT="0"
    )
    orchestrator.add_run(1, STEPS, record_id="1")
    if moment == "agent-writing":
        agent.delay(WRITE, 120)  # the agent holds the write (released when the fake stops)
    else:
        orchestrator.swallow(UPDATE_STEP, lambda body: body["stepUpdate"]["stepIndex"] == 2)

    first = executors(env, "first")
    first.wait_running()
    if moment == "agent-writing":
        assert eventually(lambda: agent.count(WRITE, "PUT") == 1, timeout=30), first.log.read_text()
    else:
        assert eventually(lambda: len(orchestrator.arrived(UPDATE_STEP)) == 3, timeout=30)
    assert [u["stepUpdate"]["stepIndex"] for u in orchestrator.updates(1)] == [0, 1]
    store = SqlRunStore(f"sqlite:///{database}")
    store.init()
    try:
        stored = store.get_step_executions("1")
        assert [e["stepIndex"] for e in stored] == [0, 1, 2]
        assert stored[2]["idempotencyPhase"] == phase  # saved before the write, then after it
        assert ("executionResult" in stored[2]) == (phase == "done")

        first.kill()
        assert first.popen.returncode == -signal.SIGKILL
        assert store.get_step_executions("1") == stored

        second = executors(env, "second")
        second.wait_running()
        # The dead process's lease runs out; then the orchestrator offers the step again.
        assert eventually(lambda: lease_is_free(database, "1"), timeout=10)
        orchestrator.runs["1"].claimed = False
        assert orchestrator.wait_until(lambda: len(orchestrator.updates(1)) == 3, timeout=30), (
            second.log.read_text()
        )

        report = orchestrator.updates(1)[2]
        assert report["stepUpdate"]["stepIndex"] == 2
        assert report["stepUpdate"]["attributes"] == {"done": True, "context": replayed}
        assert agent.count(WRITE, "PUT") == 1  # the update was not repeated
        if replayed == INTERRUPTED:
            assert report["executionStatus"] == {"type": "error", "message": STEP_STATE}
            assert second.logged(
                lambda ms: "Step execution was interrupted. Please retry the step manually." in ms
            )
        assert store.get_step_executions("1") == stored  # everything stored before the crash
        # The new process touched no data: no audit entry beyond the three of the first one.
        assert len(orchestrator.activity_logs) == 3

        # The new process serves the run's state as it was stored before the crash.
        answer = httpx.get(f"{second.url}/runs/1", headers=auth_header(7), timeout=10)
        assert answer.status_code == 200, answer.text
        steps = answer.json()["steps"]
        assert [s["stepIndex"] for s in steps] == [0, 1, 2]
        assert steps[0]["executionResult"]["fields"] == [
            {"name": "name", "displayName": "Name", "value": "Ada Lovelace"},
            {"name": "email", "displayName": "Email", "value": "ada@example.com"},
        ]
        assert steps[1]["executionResult"]["record"] == {
            "collectionName": "companies",
            "recordId": "1",
            "stepIndex": 1,
        }
        assert steps[2]["idempotencyPhase"] == phase
    finally:
        store.close()

"""Outages: the orchestrator answering 5xx, timing out or refusing connections for a while, the
agent failing in the middle of a step, the run store failing in the middle of a step.

Nothing crashes, the poll loop backs off instead of spinning and resumes within one backoff step,
an outcome that could not be reported is reported when the orchestrator offers the run again
(replaying a finished write rather than writing twice), and every failure in a step becomes the
protocol's error outcome with the store left consistent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask

from executor.adapters.forest_server import ActivityLogClient
from executor.adapters.stores.memory import MemoryRunStore
from executor.adapters.stores.sql import SqlRunStore
from executor.domain.executions import StepExecutionData
from executor.domain.records import ActivityLogHandle
from executor.errors import RunStoreError
from executor.extension import executor_state, runner_of
from executor.runner import RunnerState
from tests.conftest import auth_header, services_for
from tests.drivers import Executor
from tests.fakes.agent import FakeAgent, collection_schemas
from tests.fakes.orchestrator import ENV_SECRET, guidance_step, record_step
from tests.postgres import POSTGRES_URL, sqlalchemy_url
from tests.processes import free_port
from tests.reliability.conftest import BuildApp
from tests.reliability.support import (
    AGENT_PORT,
    FAST_RETRIES,
    PENDING,
    RUN_STORE,
    STEP_STATE,
    UPDATE_STEP,
    CountingOrchestratorClient,
    HostileAgent,
    OutageOrchestrator,
    most_polls_allowed,
    services,
)
from tests.waiting import eventually

INTERVAL_S = 0.05  # polling interval
BACKOFF_MAX_S = 0.3  # longest wait between failing polls
TIMEOUT_S = 0.3  # the executor's request timeout; a "timing out" orchestrator takes longer
SCHEDULING_SLACK_S = 0.5  # thread wake-ups on a loaded machine
KINDS = ["5xx", "timeout", "refused"]


class Site:
    """The orchestrator's address. What answers there can fail in three ways and recover; a
    refusing orchestrator is stopped, and a new one (with the same state) started on its port."""

    def __init__(self, agent: FakeAgent, *, auto_chain: bool = True) -> None:
        self.current = OutageOrchestrator(free_port(), auto_chain=auto_chain)
        self.current.agent_url = agent.url
        self.current.collection_schemas = collection_schemas(agent)
        self.current.start()
        self.up = True

    @property
    def url(self) -> str:
        return self.current.url

    def fail(self, kind: str, path_prefix: str = "/api") -> None:
        if kind == "5xx":
            self.current.outages[path_prefix] = 503
        elif kind == "timeout":
            self.current.delay(path_prefix, TIMEOUT_S * 2)
        else:
            self.current.stop()
            self.up = False

    def recover(self, kind: str, path_prefix: str = "/api") -> None:
        if kind == "5xx":
            self.current.outages.clear()
        elif kind == "timeout":
            self.current.delay(path_prefix, 0)
        else:
            self.current = self.current.successor()
            self.current.start()
            self.up = True

    def close(self) -> None:
        if self.up:
            self.current.stop()


@pytest.fixture
def site(agent: FakeAgent) -> Iterator[Site]:
    place = Site(agent)
    yield place
    place.close()


def polling_app(
    apps: BuildApp, site: Site, **overrides: Any
) -> tuple[Flask, CountingOrchestratorClient]:
    workflow = CountingOrchestratorClient(
        site.url, ENV_SECRET, timeout_s=TIMEOUT_S, retry_delays_s=FAST_RETRIES
    )
    app = apps(
        site.current,
        services(site.current, workflow=workflow, timeout_s=TIMEOUT_S),
        POLLING_INTERVAL_S=INTERVAL_S,
        POLL_BACKOFF_MAX_S=BACKOFF_MAX_S,
        **overrides,
    )
    runner_of(app).start()
    return app, workflow


def backoff_failures(app: Flask) -> int:
    poller = runner_of(app).poller
    assert poller is not None
    return poller.backoff.failures


# --- the orchestrator ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_poll_loop_backs_off_through_an_outage_and_resumes_within_one_step(
    kind: str, site: Site, apps: BuildApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="executor")
    app, workflow = polling_app(apps, site)
    assert eventually(lambda: site.current.count(PENDING) >= 2)  # polling normally

    start = time.monotonic()
    site.fail(kind)
    assert eventually(lambda: backoff_failures(app) >= 6, timeout=15)
    end = time.monotonic()
    site.recover(kind)

    # No tight loop: no more polls than the backoff allows in that time.
    # A timed-out poll lasts the whole timeout before its backoff wait begins.
    attempt_s = TIMEOUT_S * 0.9 if kind == "timeout" else 0.0
    polls = workflow.polls_between(start, end)
    allowed = most_polls_allowed(end - start, INTERVAL_S, BACKOFF_MAX_S, attempt_s=attempt_s)
    assert 5 <= polls <= allowed, (polls, allowed, end - start)
    # The first poll after the recovery comes within one backoff step (plus a poll that was
    # waiting for its timeout when the orchestrator recovered).
    assert eventually(lambda: site.current.arrived(PENDING, since=end), timeout=5)
    first = site.current.arrived(PENDING, since=end)[0]
    in_flight_poll = TIMEOUT_S if kind == "timeout" else 0.0
    assert first - end <= BACKOFF_MAX_S + in_flight_poll + SCHEDULING_SLACK_S, first - end
    assert eventually(lambda: backoff_failures(app) == 0)

    # No crash: the loop goes on and executes the runs the orchestrator offers.
    runner = runner_of(app)
    assert runner.state is RunnerState.RUNNING
    # (A poll the executor gave up on may still be handled late by the orchestrator, which would
    # then lock a run added meanwhile for nobody: let those finish first.)
    assert eventually(lambda: site.current.busy == 0)
    site.current.add_run(1, [guidance_step("manual")])
    assert site.current.wait_until(lambda: len(site.current.updates(1)) == 1)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("backing off" in m for m in messages) == 1  # logged once when it starts failing
    assert sum("succeeded again after" in m for m in messages) == 1  # and once when it recovers
    assert not any(m == "Poll cycle failed" for m in messages)


def update_tier(mode: str = "fully-automated") -> dict[str, Any]:
    return record_step("update-data", mode, fieldName="tier", value="silver")


@pytest.mark.parametrize("kind", ["5xx", "refused"])
def test_an_outcome_that_could_not_be_reported_is_replayed_without_writing_twice(
    kind: str, site: Site, agent: FakeAgent, apps: BuildApp
) -> None:
    app, _ = polling_app(apps, site)
    agent.frozen.clear()  # the probe is behind us: hold the write while the orchestrator fails
    site.current.add_run(1, [update_tier()], record_id="1")
    assert eventually(lambda: agent.count("/forest/customers/1", "PUT") == 1)
    site.fail(kind, UPDATE_STEP)
    agent.frozen.set()

    # The write is done and stored, but the report failed (after the protocol's retries).
    runner = runner_of(app)
    assert eventually(lambda: "1" not in runner.in_flight)
    store = executor_state(app).services.run_store
    entry = store.get_step_execution("1", 0)
    assert entry is not None and entry["idempotencyPhase"] == "done"
    assert site.current.updates(1) == []
    assert site.current.runs["1"].history[0]["done"] is False

    # The orchestrator recovers and offers the run again: the stored result is replayed.
    site.recover(kind, UPDATE_STEP)
    site.current.runs["1"].claimed = False
    assert site.current.wait_until(lambda: len(site.current.updates(1)) == 1)
    [report] = site.current.updates(1)
    assert report["stepUpdate"]["attributes"] == {"done": True, "context": {"status": "success"}}
    assert site.current.runs["1"].finished
    assert agent.count("/forest/customers/1", "PUT") == 1
    assert [u.attributes for u in agent.updates] == [{"tier": "silver"}]
    assert store.get_step_execution("1", 0) == entry
    assert len(site.current.activity_logs) == 1  # the replay touched no data


# --- the audit trail ----------------------------------------------------------------------------


def test_an_audit_status_update_that_finishes_at_once_does_not_deadlock() -> None:
    for _ in range(20):  # each fresh client starts its first pool thread on its first update
        # Nothing listens there: every call is refused at once.
        client = ActivityLogClient(f"http://127.0.0.1:{free_port()}", retry_delays_s=(0.0,) * 3)
        handle = ActivityLogHandle(id="1", index="idx")
        marking = threading.Thread(
            target=client.mark, args=("server-token", handle), kwargs={"succeeded": True}
        )
        marking.daemon = True  # left behind if it deadlocks
        marking.start()
        marking.join(2)
        assert not marking.is_alive(), "mark() deadlocked"
        assert client.flush(timeout=2)


# --- the agent ----------------------------------------------------------------------------------

AGENT_FAILURES = ["500", "timeout", "refused", "not-json"]
TARGET = "/forest/companies/1"  # what step 1 reads or writes (step 0 reads /forest/customers/1)


def break_agent(agent: HostileAgent, failure: str, method: str) -> None:
    if failure == "500":
        agent.fail(TARGET, 500)
    elif failure == "timeout":
        agent.delay(TARGET, TIMEOUT_S * 3)
    elif failure == "refused":
        agent.stop()
    else:
        agent.answer(method, TARGET, 200, b"<html>Bad gateway</html>")


@pytest.fixture
def hostile_agent() -> Iterator[HostileAgent]:
    fake = HostileAgent()
    fake.start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("failure", AGENT_FAILURES)
@pytest.mark.parametrize("step_type", ["get-data", "update-data"])
def test_an_agent_failing_mid_step_is_an_error_outcome_and_corrupts_nothing(
    step_type: str, failure: str, hostile_agent: HostileAgent, apps: BuildApp
) -> None:
    site = Site(hostile_agent, auto_chain=False)  # one trigger per step
    try:
        app = apps(site.current, services(site.current, timeout_s=TIMEOUT_S), POLLING_ENABLED=False)
        runner_of(app).start()
        executor = Executor(app, site.current)
        pinned: dict[str, Any] = {"selectedRecordStepId": "step-0"}
        if step_type == "get-data":
            pinned["fieldNames"] = ["name"]
        else:
            pinned.update(fieldName="name", value="Acme Corp")
        steps = [
            record_step("load-related-record", title="Company", relationName="company"),
            record_step(step_type, **pinned),
        ]
        assert executor.run(1, steps) == {"status": "success"}
        loaded = executor.entry(1, 0)

        break_agent(hostile_agent, failure, "GET" if step_type == "get-data" else "PUT")
        assert executor.trigger(1) == {"status": "error", "error": AGENT_PORT}

        stored = {e["stepIndex"]: e for e in executor.steps_view(1)}  # still served, valid
        assert executor.entry(1, 0) == loaded
        logs = executor.audit(settled=2)
        assert [e["status"] for e in logs] == ["completed", "failed"]
        if step_type == "get-data":
            assert set(stored) == {0}  # nothing was written for the failed read
            return
        # The write may have reached the agent: the write-ahead mark stays, and a re-dispatch
        # refuses to write a second time.
        assert stored[1]["idempotencyPhase"] == "executing"
        assert "executionResult" not in stored[1]

        def writes() -> int:  # those handled, and those answered with a raw body
            return hostile_agent.count(TARGET, "PUT") + hostile_agent.raw_served

        sent = writes()
        assert sent == (0 if failure == "refused" else 1)
        assert executor.redispatch(1) == {"status": "error", "error": STEP_STATE}
        assert writes() == sent
        assert executor.entry(1, 1)["idempotencyPhase"] == "executing"
        assert len(executor.audit()) == 2
    finally:
        site.close()


# --- the run store ------------------------------------------------------------------------------


class FlakyStore(MemoryRunStore):
    """A memory store whose n-th read of one step, or n-th write, fails (1-based; 0: never)."""

    def __init__(self, *, failing_read: int = 0, failing_write: int = 0) -> None:
        super().__init__()
        self.failing_read, self.failing_write = failing_read, failing_write
        self.reads = self.writes = 0

    def get_step_execution(self, run_id: str, step_index: int) -> StepExecutionData | None:
        self.reads += 1
        if self.reads == self.failing_read:
            raise RunStoreError("injected: the database went away")
        return super().get_step_execution(run_id, step_index)

    def save_step_execution(self, run_id: str, data: StepExecutionData) -> None:
        self.writes += 1
        if self.writes == self.failing_write:
            raise RunStoreError("injected: the database went away")
        super().save_step_execution(run_id, data)


@pytest.mark.parametrize(
    ("failing", "writes", "audit", "replayed"),
    [
        # Reading the step's state fails: nothing else happens; a re-dispatch writes once.
        ({"failing_read": 1}, 0, [], {"status": "success"}),
        # Saving the write-ahead mark fails: the agent is not called, the audit entry fails.
        ({"failing_write": 1}, 0, ["failed"], {"status": "success"}),
        # Saving the result fails after the write: the mark stays, a re-dispatch refuses.
        ({"failing_write": 2}, 1, ["completed"], {"status": "error", "error": STEP_STATE}),
    ],
    ids=["state-read", "write-ahead-mark", "final-write"],
)
def test_a_run_store_failing_mid_step_is_the_store_error_outcome_and_nothing_runs_twice(
    failing: dict[str, int],
    writes: int,
    audit: list[str],
    replayed: dict[str, str],
    apps: BuildApp,
    orchestrator: Any,
    agent: FakeAgent,
) -> None:
    store = FlakyStore(**failing)
    app = apps(orchestrator, services_for(orchestrator, store=store), POLLING_ENABLED=False)
    runner_of(app).start()
    executor = Executor(app, orchestrator)

    assert executor.run(1, [update_tier()]) == {"status": "error", "error": RUN_STORE}
    assert agent.count("/forest/customers/1", "PUT") == writes
    assert [e["status"] for e in executor.audit(settled=len(audit))] == audit
    entries = store.get_step_executions("1")
    assert [e.get("idempotencyPhase") for e in entries] == (["executing"] if writes else [])

    assert executor.redispatch(1) == replayed
    assert agent.count("/forest/customers/1", "PUT") == 1  # exactly once, whatever failed
    assert [u.attributes for u in agent.updates] == [{"tier": "silver"}]


def backends_of(admin: psycopg.Connection[Any], schema: str, *, blocked: bool) -> list[int]:
    """Other sessions whose last statement used ``schema`` (the executor's), or only those waiting
    for a lock; never anyone else's session on the same database."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND query LIKE %s"
        " AND (NOT %s OR wait_event_type = 'Lock')",
        (f"%{schema}%", blocked),
    ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.postgres
def test_a_postgres_connection_killed_mid_write_is_the_store_error_outcome(
    pg_schema: str, apps: BuildApp, orchestrator: Any, agent: FakeAgent
) -> None:
    assert POSTGRES_URL
    store = SqlRunStore(sqlalchemy_url(POSTGRES_URL), schema=pg_schema)
    app = apps(orchestrator, services_for(orchestrator, store=store), POLLING_ENABLED=False)
    runner_of(app).start()
    executor = Executor(app, orchestrator)
    agent.frozen.clear()  # hold the write
    orchestrator.add_run(1, [update_tier()], record_id="1")
    response = executor.client.post("/runs/1/trigger", headers=auth_header(7))
    assert response.status_code == 200
    assert eventually(lambda: agent.count("/forest/customers/1", "PUT") == 1)

    with (
        psycopg.connect(POSTGRES_URL) as locker,
        psycopg.connect(POSTGRES_URL, autocommit=True) as admin,
    ):
        # Saving the write's result will wait for this lock; its connection is then killed.
        locker.execute(f'LOCK TABLE "{pg_schema}".workflow_step_executions IN EXCLUSIVE MODE')
        agent.frozen.set()
        assert eventually(lambda: backends_of(admin, pg_schema, blocked=True))
        for pid in backends_of(admin, pg_schema, blocked=False):
            if pid != locker.info.backend_pid:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert executor.runner.in_flight.wait_settled(["1"], timeout=10)
        locker.rollback()

    [report] = orchestrator.updates(1)
    assert report["stepUpdate"]["attributes"]["context"] == {"status": "error", "error": RUN_STORE}
    assert executor.entry(1)["idempotencyPhase"] == "executing"  # the mark survived
    # The store reconnects; the re-dispatched step refuses to write a second time.
    assert executor.redispatch(1) == {"status": "error", "error": STEP_STATE}
    assert agent.count("/forest/customers/1", "PUT") == 1

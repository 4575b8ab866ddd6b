"""The record steps against both kinds of Forest agent customers run: the fake speaking the
protocol, and the real Python agent (``forestadmin-agent-flask`` over SQLite)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from executor import WorkflowExecutor, runner_of
from tests.conftest import AUTH_SECRET, auth_header, base_config
from tests.drivers import Executor
from tests.fakes.agent import FakeAgent
from tests.fakes.orchestrator import FakeOrchestrator, record_step

HAS_PYTHON_AGENT = importlib.util.find_spec("forestadmin") is not None
# The Python agent runs SQLAlchemy queries that warn about a deprecated aliasing; not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:An alias is being generated automatically:sqlalchemy.exc.SADeprecationWarning"
)
GET, UPDATE, ACTION, LOAD = "get-data", "update-data", "trigger-action", "load-related-record"
SUCCESS = {"status": "success"}
AWAITING = {"status": "awaiting-input"}


@dataclass
class World:
    """One agent with its data, and what the tests need to know about it."""

    name: str
    orchestrator: FakeOrchestrator
    customer_name: str
    order_id: str  # an order of customer 1
    order_reference: str
    order_count: int  # orders of customer 1
    formless_action: str
    form_action: str
    approval_action: str
    composite: tuple[str, str, str, Any]  # collection, pipe id, field, its value
    value_of: Callable[[str, str, str], Any]  # (collection, id, field) -> stored value
    executions: Callable[[], list[tuple[str, list[Any]]]]  # (action, ids) executed


@pytest.fixture(params=["fake-agent", "python-agent"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "fake-agent":
        fake: FakeAgent = request.getfixturevalue("agent")
        yield World(
            name="fake-agent",
            orchestrator=request.getfixturevalue("orchestrator"),
            customer_name="Ada Lovelace",
            order_id="102",
            order_reference="A-102",
            order_count=5,
            formless_action="send-invoice",
            form_action="refund",
            approval_action="archive",
            composite=("subscriptions", "pro|2024", "seats", 10),
            value_of=lambda c, i, f: (fake.record(c, i) or {}).get(f),
            executions=lambda: [(e.action, list(e.ids)) for e in fake.executions],
        )
        return
    if not HAS_PYTHON_AGENT:
        pytest.skip("forestadmin-agent-flask is not installed (pip install -e '.[test]')")
    from tests.fakes.python_agent import (
        FakeForestServerForAgent,
        orchestrator_schemas,
        start_python_agent,
    )

    with FakeOrchestrator() as orchestrator:
        orchestrator.agent_side = FakeForestServerForAgent(env_secret=orchestrator.env_secret)
        agent = start_python_agent(
            orchestrator.url,
            db_path=tmp_path / "agent.sqlite3",
            forest=orchestrator.agent_side,
            auth_secret=AUTH_SECRET,
        )
        orchestrator.agent_url = agent.url
        orchestrator.collection_schemas = orchestrator_schemas(agent)

        def value_of(collection: str, record_id: str, field: str) -> Any:
            rows = agent.query(f"SELECT {field} FROM {collection} WHERE id = {int(record_id)}")
            return rows[0][0]

        try:
            yield World(
                name="python-agent",
                orchestrator=orchestrator,
                customer_name="Ada",
                order_id="11",
                order_reference="ORD-11",
                order_count=3,
                formless_action="Mark as VIP",
                form_action="Refund",
                approval_action="Close account",
                composite=("order_lines", "10|1", "product", "Keyboard"),
                value_of=value_of,
                executions=lambda: [(e["action"], list(e["ids"])) for e in agent.executions],
            )
        finally:
            agent.stop()


@pytest.fixture
def executor(world: World, tmp_path: Path) -> Iterator[Executor]:
    from executor import create_app

    app = create_app(base_config(world.orchestrator, POLLING_ENABLED=False))
    runner_of(app).start()
    try:
        yield Executor(app, world.orchestrator)
    finally:
        runner_of(app).stop()


def test_read_record(world: World, executor: Executor) -> None:
    assert executor.run(1, [record_step(GET, fieldNames=["name", "email"])]) == SUCCESS
    fields = executor.entry(1)["executionResult"]["fields"]
    assert [(f["name"], f["value"]) for f in fields] == [
        ("name", world.customer_name),
        ("email", "ada@example.com"),
    ]


def test_update_with_confirmation(world: World, executor: Executor) -> None:
    step = record_step(UPDATE, "automated-with-confirmation", fieldName="tier", value="silver")
    assert executor.run(1, [step]) == AWAITING
    assert world.value_of("customers", "1", "tier") == "gold"
    assert executor.trigger(1, {"userConfirmed": True}) == SUCCESS
    assert world.value_of("customers", "1", "tier") == "silver"
    assert executor.entry(1)["executionResult"]["updatedValues"]["tier"] == "silver"


def test_load_a_to_many_relation_then_pick(world: World, executor: Executor) -> None:
    assert executor.run(1, [record_step(LOAD, "manual", relationName="orders")]) == AWAITING
    candidates = executor.entry(1)["pendingData"]["availableRecordIds"]
    assert len(candidates) == world.order_count
    picked = next(c for c in candidates if str(c["recordId"][0]) == world.order_id)
    assert picked["referenceFieldValue"] == world.order_reference
    body = {"userConfirmed": True, "fieldName": "orders", "selectedRecordId": world.order_id}
    assert executor.trigger(1, body) == SUCCESS
    assert executor.entry(1)["executionResult"]["record"] == {
        "collectionName": "orders",
        "recordId": [world.order_id],
        "stepIndex": 0,
    }


def test_load_a_to_one_relation(world: World, executor: Executor) -> None:
    steps = [record_step(LOAD, "fully-automated", relationName="customer")]
    assert executor.run(1, steps, collection="orders", record_id=world.order_id) == SUCCESS
    entry = executor.entry(1)
    assert entry["executionResult"]["record"] == {
        "collectionName": "customers",
        "recordId": ["1"],
        "stepIndex": 0,
    }
    assert entry["pendingData"]["suggestedRecord"]["referenceFieldValue"] == world.customer_name


def test_a_formless_action(world: World, executor: Executor) -> None:
    step = record_step(ACTION, "fully-automated", actionName=world.formless_action)
    assert executor.run(1, [step]) == SUCCESS
    [(action, ids)] = world.executions()
    assert action == world.formless_action and [str(i) for i in ids] == ["1"]
    assert executor.entry(1)["executionResult"]["success"] is True


def test_an_action_form_is_offered_to_the_user(world: World, executor: Executor) -> None:
    step = record_step(ACTION, "manual", actionName=world.form_action)
    assert executor.run(1, [step]) == AWAITING
    fields = executor.entry(1)["pendingData"]["form"]["fields"]
    amount = next(f for f in fields if f["name"] == "amount")
    assert amount["type"] == "Number" and amount["isRequired"] is True
    assert "reason" in [f["name"] for f in fields]
    assert world.executions() == []


def test_an_action_requiring_approval(world: World, executor: Executor) -> None:
    step = record_step(ACTION, "fully-automated", actionName=world.approval_action)
    outcome = executor.run(1, [step])
    [approval_id] = world.orchestrator.approvals
    assert outcome == {"status": "success", "approvalRequest": {"id": approval_id}}
    assert world.orchestrator.approvals[approval_id]["record_ids"] == ["1"]
    assert world.executions() == []


def test_a_composite_key(world: World, executor: Executor) -> None:
    collection, pipe_id, field, value = world.composite
    steps = [record_step(GET, fieldNames=[field])]
    assert executor.run(1, steps, collection=collection, record_id=pipe_id) == SUCCESS
    assert executor.entry(1)["executionResult"]["fields"][0]["value"] == value
    assert executor.steps_view(1)[0]["selectedRecordRef"]["recordId"] == pipe_id


def test_a_four_step_chain(world: World, executor: Executor) -> None:
    steps = [
        record_step(LOAD, "fully-automated", relationName="customer"),
        record_step(GET, selectedRecordStepId="step-0", fieldNames=["name", "tier"]),
        record_step(
            UPDATE,
            "automated-with-confirmation",
            selectedRecordStepId="step-0",
            fieldName="tier",
            value="silver",
        ),
        record_step(
            ACTION,
            "fully-automated",
            selectedRecordStepId="step-0",
            actionName=world.formless_action,
        ),
    ]
    first = executor.run(1, steps, collection="orders", record_id=world.order_id)
    assert first == SUCCESS
    assert executor.outcomes(1) == [SUCCESS, SUCCESS, AWAITING]
    assert executor.trigger(1, {"userConfirmed": True}) == SUCCESS
    assert executor.outcomes(1)[-1] == SUCCESS
    assert world.orchestrator.runs["1"].finished
    assert [(a, [str(i) for i in ids]) for a, ids in world.executions()] == [
        (world.formless_action, ["1"])
    ]
    view = executor.steps_view(1)
    assert [s["type"] for s in view] == [
        "load-related-record",
        "read-record",
        "update-record",
        "trigger-action",
    ]
    assert view[1]["selectedRecordRef"] == {
        "collectionName": "customers",
        "recordId": "1",
        "stepIndex": 0,
    }


# --- the embedded deployment ---------------------------------------------------------------------


@pytest.mark.skipif(not HAS_PYTHON_AGENT, reason="forestadmin-agent-flask is not installed")
def test_the_executor_embedded_in_the_python_agent_s_app(tmp_path: Path) -> None:
    """Mounted at /forest/_internal/executor, the path the front calls through the agent."""
    from tests.fakes.python_agent import (
        FakeForestServerForAgent,
        orchestrator_schemas,
        start_python_agent,
    )

    with FakeOrchestrator() as orchestrator:
        orchestrator.agent_side = FakeForestServerForAgent(env_secret=orchestrator.env_secret)

        def mount(app: Flask, url: str) -> None:
            orchestrator.agent_url = url
            WorkflowExecutor(
                app,
                url_prefix="/forest/_internal/executor",
                config=base_config(orchestrator, POLLING_ENABLED=False),
            )

        agent = start_python_agent(
            orchestrator.url,
            db_path=tmp_path / "agent.sqlite3",
            forest=orchestrator.agent_side,
            auth_secret=AUTH_SECRET,
            mount=mount,
        )
        orchestrator.collection_schemas = orchestrator_schemas(agent)
        runner = runner_of(agent.app)
        try:
            runner.start()  # probes the agent it lives in
            base = f"{agent.url}/forest/_internal/executor"
            assert httpx.get(f"{base}/health").json() == {"state": "running"}
            step = record_step(
                UPDATE, "automated-with-confirmation", fieldName="tier", value="silver"
            )
            orchestrator.add_run(42, [step], record_id="2")
            assert httpx.post(f"{base}/runs/42/trigger", headers=auth_header(7)).status_code == 200
            assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
            assert runner.in_flight.wait_settled(["42"], timeout=10)
            confirm = {"pendingData": {"userConfirmed": True}}
            answer = httpx.post(f"{base}/runs/42/trigger", json=confirm, headers=auth_header(7))
            assert answer.status_code == 200
            assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 2)
            steps = httpx.get(f"{base}/runs/42", headers=auth_header(7)).json()["steps"]
            assert steps[0]["executionResult"]["updatedValues"]["tier"] == "silver"
            assert agent.query("SELECT tier FROM customers WHERE id = 2") == [("silver",)]
            # The agent's own routes still answer as before.
            assert httpx.get(f"{agent.url}/forest").status_code == 200
        finally:
            runner.stop()
            agent.stop()

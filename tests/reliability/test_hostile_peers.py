"""Hostile peers: an orchestrator sending runs with missing fields, wrong types, huge lists and
deeply nested junk, and an agent answering wrong types, missing data and huge bodies.

A hostile run becomes a malformed-run report or a skipped run, never a crash of the poll loop; a
trigger of one answers JSON; whatever the agent answers becomes an outcome, with nothing written
twice.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.serving import make_server

from executor.adapters.orchestrator import OrchestratorClient
from executor.domain.outcomes import StepOutcome, StepStatus
from executor.domain.runs import Dispatch, PendingRuns
from executor.domain.steps import OutcomeType
from executor.errors import ExecutorError, StepDefinitionShapeError, WorkflowPortError
from executor.extension import runner_of
from executor.schemas.orchestrator import map_run, update_step_body
from tests.conftest import auth_header
from tests.drivers import Executor
from tests.fakes.agent import FakeAgent, collection_schemas
from tests.fakes.orchestrator import (
    API,
    ENV_SECRET,
    FakeOrchestrator,
    ScriptedRun,
    guidance_step,
    record_step,
)
from tests.reliability.conftest import BuildApp
from tests.reliability.support import (
    AGENT_PORT,
    DEEP,
    FUZZ,
    PENDING,
    STEP_STATE,
    HostileAgent,
    OutageOrchestrator,
    json_values,
    services,
    strict_json,
)
from tests.waiting import eventually

INVALID_STEP = "The workflow step configuration is invalid. Please check the workflow designer."
RECORD_NOT_FOUND = "The record no longer exists. It may have been deleted."


# --- hostile runs -------------------------------------------------------------------------------


def valid_envelope(run_id: int = 1, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    run = ScriptedRun(run_id=run_id, steps=steps or [guidance_step("manual")])
    run.open_step(0)
    return run.envelope()


DELETE = object()
# Where a mutation can strike: a key path into the envelope.
MUTATION_PATHS = [
    ("id",),
    ("collectionName",),
    ("collectionId",),
    ("selectedRecordId",),
    ("triggerType",),
    ("userProfile",),
    ("userProfile", "id"),
    ("userProfile", "email"),
    ("userProfile", "renderingId"),
    ("userProfile", "serverToken"),
    ("userProfile", "tags"),
    ("userProfile", "firstName"),
    ("workflowHistory",),
    ("workflowHistory", 0),
    ("workflowHistory", 0, "stepName"),
    ("workflowHistory", 0, "stepIndex"),
    ("workflowHistory", 0, "done"),
    ("workflowHistory", 0, "context"),
    ("workflowHistory", 0, "stepDefinition"),
    ("workflowHistory", 0, "stepDefinition", "type"),
    ("workflowHistory", 0, "stepDefinition", "taskType"),
    ("workflowHistory", 0, "stepDefinition", "executionType"),
    ("workflowHistory", 0, "stepDefinition", "prompt"),
    ("workflowHistory", 0, "stepDefinition", "outgoing"),
    ("workflowHistory", 0, "stepDefinition", "preRecordedArgs"),
]
hostile_values = st.one_of(
    st.just(DELETE),
    json_values,
    st.sampled_from(["\u00b2", "\u2460", "\u0663", "1e400", "-1", "", " ", "NaN"]),
    st.sampled_from([10**400, -(10**400), 2**63, 1e308, -0.0]),
)


def _holds(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


def _mutate(envelope: dict[str, Any], mutations: list[tuple[tuple[Any, ...], Any]]) -> Any:
    for path, value in mutations:
        target: Any = envelope
        for key in path[:-1]:
            if not _holds(target, key):
                break
            target = target[key]
        else:
            last = path[-1]
            if isinstance(target, dict) or _holds(target, last):
                if value is DELETE:
                    if isinstance(target, dict):
                        target.pop(last, None)
                    else:
                        del target[last]
                else:
                    target[last] = value
    return envelope


hostile_runs = st.builds(
    _mutate,
    st.builds(valid_envelope, st.integers(min_value=1, max_value=5)),
    st.lists(st.tuples(st.sampled_from(MUTATION_PATHS), hostile_values), min_size=1, max_size=4),
)


Answer = Callable[[str], bytes]  # request path → a 200 answer's body


class AnsweringServer:
    """One loopback server for every example: answers 200 with whatever ``answer`` says."""

    def __init__(self) -> None:
        self.answer: Answer = lambda path: b"null"
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = self.answer(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]


_SERVER: AnsweringServer | None = None


def answering(answer: Answer) -> OrchestratorClient:
    """An orchestrator client whose orchestrator answers ``answer(path)`` over a real socket."""
    global _SERVER
    if _SERVER is None:
        _SERVER = AnsweringServer()
    _SERVER.answer = answer
    return OrchestratorClient(_SERVER.url, ENV_SECRET, retry_delays_s=(0.0, 0.0, 0.0))


def answering_json(payload: Any) -> OrchestratorClient:
    body = json.dumps(payload).encode()
    return answering(lambda path: body)


REPORT = StepOutcome(
    type=OutcomeType.RECORD, step_id="step-0", step_index=0, status=StepStatus.ERROR, error="x"
)


@FUZZ
@given(payload=st.one_of(st.lists(hostile_runs, max_size=3), json_values))
def test_any_pending_run_payload_maps_to_runs_or_a_port_error(payload: Any) -> None:
    try:
        pending = answering_json(payload).fetch_pending_runs()
    except WorkflowPortError:
        assert not isinstance(payload, list)
        return
    assert isinstance(pending, PendingRuns)
    assert pending.fetched == len(payload)
    assert len(pending.dispatches) + len(pending.malformed) <= len(payload)
    # Every run id can be reported, as the very run it names.
    for run_id in [d.run_id for d in pending.dispatches] + [m.run_id for m in pending.malformed]:
        assert run_id == "" or (run_id.isascii() and run_id.isdigit()), run_id
        if run_id:
            assert update_step_body(run_id, REPORT)["runId"] == int(run_id)


@FUZZ
@given(payload=st.one_of(hostile_runs, json_values))
def test_any_claimed_run_payload_maps_to_a_run_or_an_executor_error(payload: Any) -> None:
    try:
        dispatch = answering_json(payload).claim_run("1")
    except ExecutorError:
        return
    assert dispatch is None or isinstance(dispatch, Dispatch)


@FUZZ
@given(payload=st.one_of(hostile_runs, json_values))
def test_any_update_step_answer_is_a_next_step_or_none(payload: Any) -> None:
    outcome = StepOutcome(
        type=OutcomeType.GUIDANCE, step_id="step-0", step_index=0, status=StepStatus.SUCCESS
    )
    answer = answering_json(payload).report_outcome("1", outcome)
    assert answer is None or isinstance(answer, Dispatch)


@pytest.fixture
def triggered(
    apps: BuildApp, orchestrator: FakeOrchestrator
) -> Iterator[tuple[Flask, list[bytes]]]:
    """An executor whose orchestrator claims run 1 with whatever is put in the returned list."""
    claimed: list[bytes] = [b"null"]

    def answer(path: str) -> bytes:
        return claimed[0] if path == f"{API}/available-run/1" else b"null"

    app = apps(orchestrator, services(orchestrator, workflow=answering(answer)))
    runner_of(app).start()
    yield app, claimed


@FUZZ
@given(payload=st.one_of(hostile_runs, json_values))
def test_a_trigger_of_any_claimed_payload_answers_json_and_5xx_only_as_the_protocol_says(
    triggered: tuple[Flask, list[bytes]], payload: Any
) -> None:
    app, claimed = triggered
    allowed_5xx = set()
    try:
        mapped = map_run(payload)
    except StepDefinitionShapeError:
        allowed_5xx.add(500)  # the protocol's one 500 for a claimed run (3.4.6)
    except ExecutorError:
        pass
    else:
        if mapped is not None and mapped.run_id != "1":
            allowed_5xx.add(503)  # the orchestrator answered another run: it failed
    claimed[0] = json.dumps(payload).encode()
    response = app.test_client().post("/runs/1/trigger", headers=auth_header(7))
    status = response.status_code
    assert status < 500 or status in allowed_5xx, (status, response.data)
    body = strict_json(response.data)
    assert body == {"triggered": True} or isinstance(body["error"], str), body
    assert runner_of(app).in_flight.wait_settled(timeout=10)


def hostile_poll_answers() -> list[tuple[str, bytes]]:
    """What an orchestrator may answer to successive polls, each with what it is."""
    huge_history = valid_envelope(7)
    done = huge_history["workflowHistory"][0]
    huge_history["workflowHistory"] = [
        {**done, "stepName": f"step-{i}", "stepIndex": i, "done": True} for i in range(9_999)
    ] + [{**done, "stepName": "step-9999", "stepIndex": 9_999, "done": False}]
    wrong_types = valid_envelope(5)
    wrong_types["userProfile"] = "ada@example.com"
    no_steps = valid_envelope(6)
    no_steps["workflowHistory"] = []
    junk = valid_envelope(8)
    junk["junk"] = json.loads("[" * 400 + "]" * 400)
    return [
        ("deeply nested junk", b"[" * DEEP + b"]" * DEEP),
        ("not JSON", b"<html>502 Bad Gateway</html>"),
        ("not a list", json.dumps({"runs": []}).encode()),
        ("not runs", json.dumps([1, "x", None, [], {}]).encode()),
        ("too big", b"[" + b" " * (17 * 1024 * 1024) + b"]"),
        ("missing and mistyped fields", json.dumps([wrong_types, no_steps, {"id": 9}]).encode()),
        ("10,000 history entries", json.dumps([huge_history]).encode()),
        ("nested junk in a field nobody reads", json.dumps([junk]).encode()),
    ]


@pytest.fixture
def hostile_orchestrator(agent: FakeAgent) -> Iterator[OutageOrchestrator]:
    fake = OutageOrchestrator()
    fake.agent_url = agent.url
    fake.collection_schemas = collection_schemas(agent)
    with fake:
        yield fake


def test_the_poll_loop_survives_hostile_orchestrator_payloads(
    hostile_orchestrator: OutageOrchestrator, apps: BuildApp
) -> None:
    fake = hostile_orchestrator
    fake.raw_answers[PENDING] = [(200, body) for _, body in hostile_poll_answers()]
    app = apps(fake, services(fake), POLLING_INTERVAL_S=0.02, POLL_BACKOFF_MAX_S=0.05)
    runner = runner_of(app)
    runner.start()
    assert eventually(lambda: not fake.raw_answers[PENDING], timeout=30)

    # A run with a step is reported as malformed; one without is only logged.
    assert fake.wait_until(lambda: len(fake.updates(5)) == 1)
    [malformed] = fake.updates(5)
    assert malformed["stepUpdate"]["attributes"]["context"] == {
        "status": "error",
        "error": INVALID_STEP,
    }
    # A huge history, and junk in a field nobody reads, do not stop a run from executing.
    assert fake.wait_until(lambda: len(fake.updates(7)) == 1 and len(fake.updates(8)) == 1)
    assert fake.updates(7)[0]["stepUpdate"]["stepIndex"] == 9_999
    assert {u["runId"] for u in fake.updates()} == {5, 7, 8}
    # The loop goes on: the next run the orchestrator offers is executed.
    fake.add_run(1, [guidance_step("manual")])
    assert fake.wait_until(lambda: len(fake.updates(1)) == 1)
    assert runner.state.value == "running"


def cycles_done(fake: OutageOrchestrator, count: int) -> bool:
    """Whether ``count`` poll cycles are over: the poller polls again only once a cycle (its
    malformed-run reports and the chains it started) is over."""
    return len(fake.arrived(PENDING)) > count


def with_value(run_id: int, path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    envelope: dict[str, Any] = _mutate(valid_envelope(run_id), [(path, value)])
    return envelope


def type_confused_runs() -> dict[int, dict[str, Any]]:
    """Runs with an object or a list where a name belongs, by id."""
    definition = ("workflowHistory", 0, "stepDefinition")
    return {
        11: with_value(11, (*definition, "taskType"), ["guideline"]),
        12: with_value(12, (*definition, "type"), {"task": True}),
        13: with_value(13, ("triggerType",), ["manual"]),
    }


def huge_number_runs() -> dict[int, dict[str, Any]]:
    """Runs with integers beyond any float (which a JavaScript orchestrator would not even
    produce: JSON.parse turns them into Infinity), by id."""
    return {
        14: with_value(14, ("userProfile", "renderingId"), 10**400),
        15: with_value(15, ("userProfile", "id"), 10**400),
    }


@pytest.mark.parametrize("path", ["poll", "trigger"])
def test_a_run_with_values_of_unforeseen_types_or_sizes_harms_nothing(
    hostile_orchestrator: OutageOrchestrator, apps: BuildApp, path: str
) -> None:
    """An object where a name belongs is a malformed run, reported (400 on a trigger); an integer
    beyond any float is at least no crash and no 5xx."""
    fake = hostile_orchestrator
    confused, huge = type_confused_runs(), huge_number_runs()
    statuses = {}
    if path == "poll":
        everything = [*confused.values(), *huge.values()]
        fake.raw_answers[PENDING] = [(200, json.dumps(everything).encode())]
        app = apps(fake, services(fake), POLLING_INTERVAL_S=0.02)
        runner_of(app).start()
        assert eventually(lambda: cycles_done(fake, 1))
    else:
        app = apps(fake, services(fake), POLLING_ENABLED=False)
        runner_of(app).start()
        for run_id, envelope in {**confused, **huge}.items():
            claim = f"{API}/available-run/{run_id}"
            fake.raw_answers[claim] = [(200, json.dumps(envelope).encode())]
            response = app.test_client().post(f"/runs/{run_id}/trigger", headers=auth_header(7))
            statuses[run_id] = response.status_code
        assert runner_of(app).in_flight.wait_settled(timeout=10)
    reported = {u["runId"]: u["stepUpdate"]["attributes"]["context"] for u in fake.updates()}
    for run_id in confused:  # reported as malformed, with a message
        assert reported[run_id]["status"] == "error" and reported[run_id]["error"], run_id
        if path == "trigger":
            assert statuses[run_id] == 400, (run_id, statuses)
    assert all(status < 500 for status in statuses.values()), statuses
    assert runner_of(app).state.value == "running"


@pytest.mark.parametrize(
    "run_id", ["\u00b2", "\u0663"], ids=["superscript-two", "arabic-indic-three"]
)
def test_a_run_id_of_unicode_digits_harms_no_other_run(
    hostile_orchestrator: OutageOrchestrator, apps: BuildApp, run_id: str
) -> None:
    fake = hostile_orchestrator
    fake.add_run(1, [guidance_step("manual")])
    fake.runs["1"].claimed = True  # handed out by the poll below, which locks it
    hostile = valid_envelope(2)
    hostile["id"] = run_id
    del hostile["userProfile"]  # malformed: reported as such, if its id allows
    answer = json.dumps([hostile, fake.runs["1"].envelope()]).encode()
    fake.raw_answers[PENDING] = [(200, answer)]
    runner_of(apps(fake, services(fake), POLLING_INTERVAL_S=0.02)).start()
    assert eventually(lambda: cycles_done(fake, 1))
    assert {u["runId"] for u in fake.updates()} == {1}


def test_a_claim_answered_with_another_run_is_refused_and_leaves_nothing_in_flight(
    hostile_orchestrator: OutageOrchestrator, apps: BuildApp
) -> None:
    """The guards (in flight, lease) are taken for the run asked for: executing another run under
    them would leave that one unguarded and this one in flight for good."""
    fake = hostile_orchestrator
    fake.add_run(3, [guidance_step("manual")])
    fake.raw_answers[f"{API}/available-run/1"] = [
        (200, json.dumps(fake.runs["3"].envelope()).encode())
    ]
    app = apps(fake, services(fake), POLLING_ENABLED=False)
    runner = runner_of(app)
    runner.start()
    client = app.test_client()
    refused = client.post("/runs/1/trigger", headers=auth_header(7))
    assert refused.status_code == 503, refused.data
    assert isinstance(strict_json(refused.data)["error"], str)
    assert runner.in_flight.snapshot() == frozenset()
    assert fake.updates(3) == []  # not executed under run 1's guards

    fake.add_run(1, [guidance_step("manual")])
    response = client.post("/runs/1/trigger", headers=auth_header(7))
    assert response.status_code == 200, response.data  # neither in flight nor leased any more
    assert fake.wait_until(lambda: len(fake.updates(1)) == 1)


def test_a_claim_answered_with_unparseable_json_is_an_orchestrator_failure(
    hostile_orchestrator: OutageOrchestrator, apps: BuildApp
) -> None:
    fake = hostile_orchestrator
    fake.raw_answers[f"{API}/available-run/1"] = [(200, b"[" * DEEP + b"]" * DEEP)]
    app = apps(fake, services(fake), POLLING_ENABLED=False)
    runner_of(app).start()
    response = app.test_client().post("/runs/1/trigger", headers=auth_header(7))
    assert response.status_code == 503, response.data


# --- hostile agent answers ----------------------------------------------------------------------

HUGE = b'{"data": {"attributes": {"name": "' + b"x" * (17 * 1024 * 1024) + b'"}}}'


@pytest.fixture
def hostile_agent() -> Iterator[HostileAgent]:
    fake = HostileAgent()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def against_hostile_agent(hostile_agent: HostileAgent, apps: BuildApp) -> Iterator[Executor]:
    fake = FakeOrchestrator()
    fake.agent_url = hostile_agent.url
    fake.collection_schemas = collection_schemas(hostile_agent)
    with fake:
        app = apps(fake, services(fake), POLLING_ENABLED=False)
        runner_of(app).start()
        yield Executor(app, fake)


def error(message: str) -> dict[str, str]:
    return {"status": "error", "error": message}


HOSTILE_READS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    # (status, body, outcome) of reading the record
    "empty": (200, b"", error(RECORD_NOT_FOUND)),
    "empty-object": (200, b"{}", error(RECORD_NOT_FOUND)),
    "null": (200, b"null", error(RECORD_NOT_FOUND)),
    "array": (200, b"[]", error(RECORD_NOT_FOUND)),
    "string": (200, b'"Ada"', error(RECORD_NOT_FOUND)),
    "data-array": (200, b'{"data": []}', error(RECORD_NOT_FOUND)),
    "no-data": (200, b'{"errors": [{"detail": "x"}]}', error(RECORD_NOT_FOUND)),
    "not-json": (200, b"<html>oops</html>", error(AGENT_PORT)),
    "not-utf8": (200, b"\xff\xfe{}", error(AGENT_PORT)),
    "huge": (200, HUGE, error(AGENT_PORT)),
    "deep": (200, b"[" * DEEP + b"]" * DEEP, error(AGENT_PORT)),
    "500-html": (500, b"<html>Internal error</html>", error(AGENT_PORT)),
    "redirect": (302, b"", error(AGENT_PORT)),
    "404-not-json": (404, b"not json", error(RECORD_NOT_FOUND)),
}


def test_a_hostile_read_answer_is_an_error_outcome_and_stores_nothing(
    against_hostile_agent: Executor, hostile_agent: HostileAgent
) -> None:
    executor = against_hostile_agent
    seen = {}
    for run_id, (name, (status, body, _)) in enumerate(HOSTILE_READS.items(), start=1):
        hostile_agent.answer("GET", "/forest/customers/1", status, body)
        outcome = executor.run(run_id, [record_step("get-data", fieldNames=["name"])])
        seen[name] = (outcome, executor.steps_view(run_id))
    expected: dict[str, Any] = {
        name: (outcome, []) for name, (_, _, outcome) in HOSTILE_READS.items()
    }
    assert seen == expected  # an error outcome, and nothing stored for the failed read
    logs = executor.audit(settled=len(HOSTILE_READS))
    assert [e["status"] for e in logs] == ["failed"] * len(HOSTILE_READS)


WRONG_SHAPES: dict[str, tuple[bytes, Any]] = {
    # (body, the value stored for the field)
    "attributes-string": (b'{"data": {"attributes": "Ada"}}', None),
    "wrong-type": (b'{"data": {"attributes": {"name": 42}}}', 42),
    "object-value": (
        b'{"data": {"attributes": {"name": {"first": ["A", {"x": null}]}}}}',
        {"first": ["A", {"x": None}]},
    ),
}


def test_a_read_answer_of_the_wrong_shape_is_stored_as_given_and_served_as_json(
    against_hostile_agent: Executor, hostile_agent: HostileAgent
) -> None:
    """The protocol reads attributes as given (4.3): no error, but nothing breaks either."""
    executor = against_hostile_agent
    for run_id, (body, stored) in enumerate(WRONG_SHAPES.values(), start=1):
        hostile_agent.answer("GET", "/forest/customers/1", 200, body)
        assert executor.run(run_id, [record_step("get-data", fieldNames=["name"])]) == {
            "status": "success"
        }
        [step] = executor.steps_view(run_id)
        assert step["executionResult"]["fields"] == [
            {"name": "name", "displayName": "Name", "value": stored}
        ]


HOSTILE_WRITES: dict[str, tuple[int, bytes, dict[str, str]]] = {
    # (status, body, outcome) of writing the record
    "not-json": (200, b"<html>oops</html>", error(AGENT_PORT)),
    "huge": (200, HUGE, error(AGENT_PORT)),
    "deep": (200, b"[" * DEEP + b"]" * DEEP, error(AGENT_PORT)),
    "503": (503, b"", error(AGENT_PORT)),
    "null": (200, b"null", {"status": "success"}),
    "no-values": (200, b'{"data": {"attributes": []}}', {"status": "success"}),
}


def test_a_hostile_write_answer_never_leads_to_a_second_write(
    against_hostile_agent: Executor, hostile_agent: HostileAgent
) -> None:
    executor = against_hostile_agent
    step = record_step("update-data", fieldName="tier", value="silver")
    for run_id, (status, body, outcome) in enumerate(HOSTILE_WRITES.values(), start=1):
        hostile_agent.answer("PUT", "/forest/customers/1", status, body)
        writes = hostile_agent.raw_served
        assert executor.run(run_id, [step]) == outcome
        [entry] = executor.steps_view(run_id)
        phase = "done" if outcome["status"] == "success" else "executing"
        assert entry["idempotencyPhase"] == phase
        # Offered again, the step replays its result or refuses: the write is never sent again.
        assert executor.redispatch(run_id) == (outcome if phase == "done" else error(STEP_STATE))
        assert hostile_agent.raw_served == writes + 1


ACTION_REFUSED = "The submitted form values were rejected. Please review the form and try again."
HOSTILE_ACTION_ANSWERS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    # (status, body, outcome) of executing the action
    "not-json": (200, b"<html>oops</html>", error(AGENT_PORT)),
    "deep": (200, b"[" * DEEP + b"]" * DEEP, error(AGENT_PORT)),
    "huge": (200, HUGE, error(AGENT_PORT)),
    "500": (500, b"{}", error(AGENT_PORT)),
    "400": (400, b'{"errors": [{"detail": "bad"}]}', error(ACTION_REFUSED)),
    "null": (200, b"null", {"status": "success"}),  # any JSON is the action's result
    "list": (200, b"[1, 2]", {"status": "success"}),
}


def test_a_hostile_action_answer_never_leads_to_a_second_execution(
    against_hostile_agent: Executor, hostile_agent: HostileAgent
) -> None:
    executor = against_hostile_agent
    step = record_step("trigger-action", actionName="send-invoice")
    endpoint = "/forest/_actions/customers/0/send-invoice"
    for run_id, (status, body, outcome) in enumerate(HOSTILE_ACTION_ANSWERS.values(), start=1):
        hostile_agent.answer("POST", endpoint, status, body)
        executions = hostile_agent.raw_served
        assert executor.run(run_id, [step]) == outcome
        [entry] = executor.steps_view(run_id)
        phase = "done" if outcome["status"] == "success" else "executing"
        assert entry["idempotencyPhase"] == phase
        assert executor.redispatch(run_id) == (outcome if phase == "done" else error(STEP_STATE))
        assert hostile_agent.raw_served == executions + 1


HOSTILE_LISTS: dict[str, bytes] = {
    "data-object": b'{"data": {}}',
    "array": b"[]",
    "deep": b"[" * DEEP + b"]" * DEEP,
    "not-json": b"<html>oops</html>",
}


def test_a_hostile_related_list_is_an_error_outcome_and_junk_rows_are_dropped(
    against_hostile_agent: Executor, hostile_agent: HostileAgent
) -> None:
    executor = against_hostile_agent
    step = record_step("load-related-record", "manual", relationName="orders")
    relationship = "/forest/customers/1/relationships/orders"
    for run_id, body in enumerate(HOSTILE_LISTS.values(), start=1):
        hostile_agent.answer("GET", relationship, 200, body)
        assert executor.run(run_id, [step]) == error(AGENT_PORT)
        assert executor.steps_view(run_id) == []
    hostile_agent.answer("GET", relationship, 200, b'{"data": [1, "x", null, {"id": "5"}]}')
    assert executor.run(9, [step]) == {"status": "awaiting-input"}
    [entry] = executor.steps_view(9)
    assert entry["pendingData"]["availableRecordIds"] == [
        {"recordId": "5", "referenceFieldValue": None}
    ]


def test_many_hostile_answers_at_once_leave_the_executor_serving(
    against_hostile_agent: Executor, hostile_agent: HostileAgent
) -> None:
    """Several runs meeting several hostile answers concurrently: every run gets an outcome."""
    executor = against_hostile_agent
    hostile_agent.answer("GET", "/forest/customers/1", 200, b"[" * DEEP + b"]" * DEEP)
    hostile_agent.answer("GET", "/forest/customers/2", 200, HUGE)
    hostile_agent.answer("GET", "/forest/customers/3", 200, b"<html>")
    runs = {run_id: str(run_id % 3 + 1) for run_id in range(1, 13)}
    for run_id, record_id in runs.items():
        executor.orchestrator.add_run(
            run_id, [record_step("get-data", fieldNames=["name"])], record_id=record_id
        )
    threads = [
        threading.Thread(
            target=lambda r=run_id: executor.client.post(
                f"/runs/{r}/trigger", headers=auth_header(7)
            )
        )
        for run_id in runs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert executor.orchestrator.wait_until(
        lambda: all(len(executor.orchestrator.updates(r)) == 1 for r in runs), timeout=30
    )
    statuses = {
        u["stepUpdate"]["attributes"]["context"]["status"] for u in executor.orchestrator.updates()
    }
    assert statuses == {"error"}
    assert executor.client.get("/health").json == {"state": "running"}

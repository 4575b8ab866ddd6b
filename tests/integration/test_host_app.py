"""The executor mounted into someone else's Flask app with ``WorkflowExecutor``: its routes work
under the prefix, and the host's routes, error handlers and config stay the host's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, abort

import executor
from executor import WorkflowExecutor, create_app, runner_of
from executor.extension import executor_state
from tests.conftest import auth_header, base_config
from tests.fakes.orchestrator import FakeOrchestrator, guidance_step

VERSION_HEADER = "X-Executor-Version"


@pytest.fixture
def make_host(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> Iterator[Callable[..., tuple[Flask, Path]]]:
    """A host app with its own routes, 404 handler and config, the executor mounted at
    ``/executor``. Returns the app and the file of the host's own (SQLite) database."""
    hosts: list[Flask] = []

    def build(**overrides: Any) -> tuple[Flask, Path]:
        host = Flask("host_app", instance_path=str(tmp_path / "host-instance"))
        host_database = tmp_path / "host.db"
        host.config["DATABASE_URL"] = f"sqlite:///{host_database}"
        host.config["SECRET_KEY"] = "host-secret"

        @host.get("/hello")
        def hello() -> str:
            return "hello from the host"

        @host.get("/missing-thing")
        def missing_thing() -> str:
            abort(404)

        @host.get("/boom")
        def boom() -> str:
            raise RuntimeError("host bug")

        @host.errorhandler(404)
        def host_not_found(error: Exception) -> tuple[str, int]:
            return "host 404", 404

        @host.errorhandler(500)
        def host_error(error: Exception) -> tuple[str, int]:
            return "host 500", 500

        WorkflowExecutor(
            host, url_prefix="/executor", config=base_config(orchestrator, **overrides)
        )
        hosts.append(host)
        return host, host_database

    yield build
    for host in hosts:
        runner_of(host).stop()


def test_executor_routes_work_under_the_prefix(orchestrator, make_host):
    host, _ = make_host(POLLING_ENABLED=False)
    client = host.test_client()

    idle = client.get("/executor/health")
    assert (idle.status_code, idle.json) == (503, {"state": "idle"})
    runner_of(host).start()
    running = client.get("/executor/health")
    assert (running.status_code, running.json) == (200, {"state": "running"})
    assert running.headers[VERSION_HEADER] == executor.__version__

    unauthenticated = client.get("/executor/runs/42")
    assert (unauthenticated.status_code, unauthenticated.json) == (401, {"error": "Unauthorized"})
    assert unauthenticated.headers[VERSION_HEADER] == executor.__version__
    bad_run_id = client.get("/executor/runs/abc", headers=auth_header(7))
    assert (bad_run_id.status_code, bad_run_id.json) == (
        404,
        {"error": "Run not found or unavailable"},
    )
    assert client.get("/health").status_code == 404  # only under the prefix


def test_trigger_and_read_a_run_end_to_end_through_the_host(orchestrator, make_host):
    host, _ = make_host(POLLING_ENABLED=False)
    runner_of(host).start()
    orchestrator.add_run(42, [guidance_step("manual")])
    client = host.test_client()

    triggered = client.post(
        "/executor/runs/42/trigger",
        json={"pendingData": {"userInput": "Call back"}},
        headers=auth_header(7),
    )

    assert (triggered.status_code, triggered.json) == (200, {"triggered": True})
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
    assert orchestrator.updates(42)[0]["executionStatus"] == {"type": "success"}
    read = client.get("/executor/runs/42", headers=auth_header(7))
    assert (read.status_code, read.json) == (
        200,
        {
            "steps": [
                {"type": "guidance", "stepIndex": 0, "executionResult": {"userInput": "Call back"}}
            ]
        },
    )
    forbidden = client.get("/executor/runs/42", headers=auth_header(8))
    assert (forbidden.status_code, forbidden.json) == (403, {"error": "Forbidden"})


def test_polling_works_in_the_host(orchestrator, make_host):
    host, _ = make_host()
    orchestrator.add_run(42, [guidance_step("manual")])
    runner_of(host).start()
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
    assert orchestrator.updates(42)[0]["executionStatus"] == {"type": "awaiting-input"}


def test_the_hosts_own_routes_and_404_handler_are_untouched(make_host):
    host, _ = make_host()
    client = host.test_client()

    hello = client.get("/hello")
    assert (hello.status_code, hello.get_data(as_text=True)) == (200, "hello from the host")
    assert VERSION_HEADER not in hello.headers

    # No token needed anywhere the executor does not own, and the host's 404 stays the host's.
    for path in ("/nowhere", "/missing-thing", "/executor/nowhere", "/executor/runs"):
        response = client.get(path)
        assert (response.status_code, response.get_data(as_text=True)) == (404, "host 404"), path
        assert VERSION_HEADER not in response.headers, path


def test_the_host_keeps_its_config_and_the_executor_does_not_use_its_database(
    orchestrator, make_host, monkeypatch
):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    # Without an in-memory store the executor picks its default SQLite store, not the host's DB.
    host, host_database = make_host(IN_MEMORY_STORE=False, POLLING_ENABLED=False)
    runner_of(host).start()
    orchestrator.add_run(42, [guidance_step("manual")])

    triggered = host.test_client().post(
        "/executor/runs/42/trigger",
        json={"pendingData": {"userInput": "Stored"}},
        headers=auth_header(7),
    )
    assert triggered.status_code == 200
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
    read = host.test_client().get("/executor/runs/42", headers=auth_header(7))
    assert read.json == {
        "steps": [{"type": "guidance", "stepIndex": 0, "executionResult": {"userInput": "Stored"}}]
    }

    assert not host_database.exists()
    assert str(host_database) not in (executor_state(host).settings.store_url or "")
    assert host.config["DATABASE_URL"] == f"sqlite:///{host_database}"
    assert host.config["SECRET_KEY"] == "host-secret"
    assert "FOREST_AUTH_SECRET" not in host.config


def test_mounting_twice_on_the_same_app_raises(orchestrator, make_host):
    host, _ = make_host()
    with pytest.raises(RuntimeError):
        WorkflowExecutor(host, url_prefix="/again", config=base_config(orchestrator))
    with pytest.raises(RuntimeError):
        WorkflowExecutor().init_app(host, config=base_config(orchestrator))
    assert host.test_client().get("/again/health").status_code == 404


def test_mounting_on_an_executor_app_raises(orchestrator):
    app = create_app(base_config(orchestrator))
    with pytest.raises(RuntimeError):
        WorkflowExecutor(app, url_prefix="/again", config=base_config(orchestrator))


def test_the_hosts_own_500_handler_is_untouched(make_host):
    host, _ = make_host()
    response = host.test_client().get("/boom")
    assert (response.status_code, response.get_data(as_text=True)) == (500, "host 500")
    assert VERSION_HEADER not in response.headers

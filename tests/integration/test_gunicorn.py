"""gunicorn: the Runner's gunicorn mode, and ``gunicorn -w 2 wsgi:app`` end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from executor import Runner, create_app
from executor.extension import executor_state
from tests.conftest import auth_header, base_config
from tests.fakes.orchestrator import API, FakeOrchestrator, guidance_step
from tests.processes import REPO, executor_environment, free_port
from tests.scraping import value
from tests.waiting import eventually

pytestmark = pytest.mark.slow


def test_runner_gunicorn_mode_serves_and_executes_in_its_workers(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    config = base_config(
        orchestrator,
        IN_MEMORY_STORE=False,
        DATABASE_URL=f"sqlite:///{tmp_path / 'runs.sqlite3'}",
        POLLING_ENABLED=False,
        HTTP_WORKERS=2,
    )
    app = create_app(config)
    state = executor_state(app)
    runner = Runner(state.settings, state.services, app=app, http_port=0, server="gunicorn")
    runner.start()
    base = f"http://127.0.0.1:{runner.http_port}"
    try:
        assert httpx.get(f"{base}/health").json() == {"state": "running"}
        orchestrator.add_run(42, [guidance_step("manual")])
        trigger = httpx.post(
            f"{base}/runs/42/trigger",
            json={"pendingData": {"userInput": "from a worker"}},
            headers=auth_header(7),
        )
        assert trigger.status_code == 200, trigger.text
        assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
        assert orchestrator.updates(42)[0]["executionStatus"] == {"type": "success"}
        steps = httpx.get(f"{base}/runs/42", headers=auth_header(7)).json()["steps"]
        assert steps[0]["executionResult"] == {"userInput": "from a worker"}
    finally:
        runner.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health", timeout=2)


class Gunicorn:
    """``gunicorn -w 2 wsgi:app`` in a child process, as an operator would run it."""

    def __init__(self, orchestrator: FakeOrchestrator, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.log = tmp_path / "gunicorn.log"
        environment = executor_environment(
            orchestrator, tmp_path, STOP_TIMEOUT_S="10", LOG_LEVEL="debug", **env
        )
        # gunicorn.conf.py's metrics directory: in the test's folder, even if the server is killed.
        environment["TMPDIR"] = str(tmp_path)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-w",
                    "2",
                    "-k",
                    "gthread",
                    "--threads",
                    "4",
                    "--graceful-timeout",
                    "20",
                    "-b",
                    f"127.0.0.1:{self.port}",
                    "wsgi:app",
                ],
                cwd=REPO,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        assert eventually(self._healthy, timeout=30), self.log.read_text()

    def _healthy(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def gunicorn(orchestrator: FakeOrchestrator, tmp_path: Path) -> Iterator[Any]:
    started: list[Gunicorn] = []

    def start(**env: str) -> Gunicorn:
        server = Gunicorn(orchestrator, tmp_path, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def test_polling_workers_execute_each_run_once(
    orchestrator: FakeOrchestrator, gunicorn: Any
) -> None:
    server = gunicorn()
    for run_id in range(1, 9):
        orchestrator.add_run(run_id, [guidance_step("fully-automated")] * 2)

    # Both workers poll; the orchestrator hands a run to one poller, and leases stop the rest.
    assert orchestrator.wait_until(
        lambda: all(orchestrator.runs[str(r)].history[-1].get("context") for r in range(1, 9)),
        timeout=30,
    ), server.log.read_text()
    for run_id in range(1, 9):
        indexes = [u["stepUpdate"]["stepIndex"] for u in orchestrator.updates(run_id)]
        assert indexes == [0], (run_id, indexes)
    assert server.terminate() == 0


def test_a_run_in_flight_answers_400_whichever_worker_is_asked(
    orchestrator: FakeOrchestrator, gunicorn: Any
) -> None:
    server = gunicorn(POLLING_ENABLED="false")
    orchestrator.add_run(42, [guidance_step("manual")])
    orchestrator.delay(f"{API}/update-step", 1.5)  # keeps the run in flight while we knock
    barrier = threading.Barrier(8)
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def knock() -> None:
        barrier.wait()
        with httpx.Client() as client:  # one connection each: the workers share the load
            response = client.post(f"{server.url}/runs/42/trigger", headers=auth_header(7))
        with lock:
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=knock) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(code for code, _ in answers) == [200] + [400] * 7, answers
    assert {body["error"] for code, body in answers if code == 400} == {
        "This step is already running."
    }
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1, timeout=10)
    assert orchestrator.count(f"{API}/available-run/42") == 1


def test_sigterm_drains_the_run_in_flight_and_exits_0(
    orchestrator: FakeOrchestrator, gunicorn: Any
) -> None:
    server = gunicorn(POLLING_ENABLED="false")
    orchestrator.add_run(42, [guidance_step("manual")])
    orchestrator.delay(f"{API}/update-step", 3.0)  # longer than a gthread worker takes to exit
    response = httpx.post(f"{server.url}/runs/42/trigger", headers=auth_header(7))
    assert response.status_code == 200
    assert orchestrator.wait_until(lambda: orchestrator.count(f"{API}/update-step") == 1)

    assert server.terminate() == 0
    records = [json.loads(line) for line in server.log.read_text().splitlines() if line[:1] == "{"]
    chain_pid = next(r["pid"] for r in records if r["message"].startswith("Chain completed"))
    worker = [r["message"] for r in records if r["pid"] == chain_pid]
    # The worker that ran the chain did not stop before the chain had its answer.
    completed = next(i for i, m in enumerate(worker) if m.startswith("Chain completed"))
    assert completed < worker.index("Executor stopped")
    assert "Executor draining" in worker
    assert not any(r["message"].startswith("Drain timeout") for r in records)


def _records(server: Gunicorn) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log.read_text().splitlines() if line[:1] == "{"]


def _trigger_together(server: Gunicorn, run_ids: range) -> int:
    """Trigger the runs at once, one connection each so that both workers take some."""
    barrier = threading.Barrier(len(run_ids))
    codes: list[int] = []

    def knock(run_id: int) -> None:
        barrier.wait()
        with httpx.Client() as client:
            response = client.post(
                f"{server.url}/runs/{run_id}/trigger",
                json={"pendingData": {"userInput": "hi"}},
                headers=auth_header(7),
            )
        codes.append(response.status_code)

    threads = [threading.Thread(target=knock, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes.count(200)


def _scrape(server: Gunicorn) -> str:
    with httpx.Client() as client:  # a new connection: any worker may answer
        response = client.get(f"{server.url}/metrics")
    assert response.status_code == 200
    return response.text


def test_metrics_add_up_across_workers_and_outlive_a_dead_one(
    orchestrator: FakeOrchestrator, gunicorn: Any
) -> None:
    server = gunicorn(POLLING_ENABLED="false")
    triggered, first = 0, 1

    def executing_workers() -> set[int]:
        return {r["pid"] for r in _records(server) if r["message"] == "Step executed"}

    # Work goes to whichever worker accepts the connection: go on until both have done some.
    while len(executing_workers()) < 2 and first < 100:
        batch = range(first, first + 8)
        for run_id in batch:
            orchestrator.add_run(run_id, [guidance_step("manual")])
        triggered += _trigger_together(server, batch)
        assert orchestrator.wait_until(
            lambda batch=batch: all(len(orchestrator.updates(r)) == 1 for r in batch), timeout=30
        )
        first += 8
    workers = executing_workers()
    assert len(workers) == 2, server.log.read_text()

    def totals_add_up() -> bool:
        text = _scrape(server)
        steps = value(
            text, "workflow_executor_steps_executed_total", step_type="guidance", status="success"
        )
        return (
            steps == triggered
            and value(text, "workflow_executor_runs_claimed_total", source="trigger") == triggered
            and value(
                text,
                "workflow_executor_port_call_duration_seconds_count",
                port="orchestrator",
                operation="claim_run",
            )
            == triggered
            and value(text, "workflow_executor_runs_in_flight") == 0
        )

    # Each scrape, whichever worker answers it, counts the work of both.
    for _ in range(6):
        assert eventually(totals_add_up), _scrape(server)

    # A worker that dies keeps its counts in the totals; its live gauges are forgotten.
    directory = Path(
        next(
            line.rsplit(" ", 1)[1]
            for line in server.log.read_text().splitlines()
            if "Metrics of every worker are merged from" in line
        )
    )
    dead = sorted(workers)[0]
    assert (directory / f"gauge_livesum_{dead}.db").exists()
    os.kill(dead, signal.SIGKILL)
    assert eventually(lambda: not (directory / f"gauge_livesum_{dead}.db").exists(), timeout=30)
    assert eventually(
        lambda: httpx.get(f"{server.url}/health", timeout=2).status_code == 200, timeout=30
    )
    for _ in range(4):
        assert eventually(totals_add_up), _scrape(server)

    assert server.terminate() == 0
    assert not directory.exists()  # the directory gunicorn.conf.py made is gone with the server

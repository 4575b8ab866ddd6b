"""Driving an executor as the front and the orchestrator would, for integration tests."""

from __future__ import annotations

from typing import Any

from flask import Flask

from executor.extension import executor_state, runner_of
from tests.conftest import auth_header
from tests.fakes.orchestrator import FakeOrchestrator


class Executor:
    """An executor app with a running runner, driven like the front drives it."""

    def __init__(self, app: Flask, orchestrator: FakeOrchestrator) -> None:
        self.app = app
        self.orchestrator = orchestrator
        self.client = app.test_client()
        self.runner = runner_of(app)

    def run(
        self, run_id: int, steps: list[dict[str, Any]], *, record_id: str = "1", **options: Any
    ) -> dict[str, Any]:
        """Start a run with a trigger and return the first outcome reported."""
        self.orchestrator.add_run(run_id, steps, record_id=record_id, **options)
        return self.trigger(run_id)

    def trigger(self, run_id: int, pending_data: Any = None) -> dict[str, Any]:
        """Trigger (with pendingData) and return the outcome context the orchestrator got."""
        before = len(self.orchestrator.updates(run_id))
        body = {} if pending_data is None else {"pendingData": pending_data}
        response = self.client.post(f"/runs/{run_id}/trigger", json=body, headers=auth_header(7))
        assert response.status_code == 200, response.json
        assert self.runner.in_flight.wait_settled([str(run_id)], timeout=10)
        updates = self.orchestrator.updates(run_id)
        assert len(updates) > before, "no outcome was reported"
        context: dict[str, Any] = updates[before]["stepUpdate"]["attributes"]["context"]
        return context

    def redispatch(self, run_id: int) -> dict[str, Any]:
        """The orchestrator offers the last step again (e.g. after a crash) and we trigger it."""
        run = self.orchestrator.runs[str(run_id)]
        run.history[-1]["done"] = False
        run.finished = False
        return self.trigger(run_id)

    def outcomes(self, run_id: int) -> list[dict[str, Any]]:
        return [u["stepUpdate"]["attributes"]["context"] for u in self.orchestrator.updates(run_id)]

    def entry(self, run_id: int, step_index: int = 0) -> dict[str, Any]:
        stored = executor_state(self.app).services.run_store.get_step_execution(
            str(run_id), step_index
        )
        assert stored is not None
        return stored

    def steps_view(self, run_id: int) -> list[dict[str, Any]]:
        response = self.client.get(f"/runs/{run_id}", headers=auth_header(7))
        assert response.status_code == 200
        steps: list[dict[str, Any]] = response.json["steps"]
        return steps

    def audit(self, settled: int | None = None) -> list[dict[str, Any]]:
        """The audit entries, once every status update has arrived."""
        logs = self.orchestrator.activity_logs
        assert self.orchestrator.wait_until(
            lambda: (
                all(e["status"] != "pending" for e in logs)
                and (settled is None or len(logs) >= settled)
            )
        )
        return logs

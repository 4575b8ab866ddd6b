from __future__ import annotations

from executor.extension import runner_of
from tests.conftest import auth_header
from tests.fakes.orchestrator import guidance_step


def test_guidance_run_awaits_then_succeeds_with_user_input(orchestrator, make_app):
    orchestrator.add_run(42, [guidance_step("manual")])
    app = make_app()
    runner_of(app).start()
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
    assert orchestrator.updates(42)[0]["executionStatus"] == {"type": "awaiting-input"}
    assert runner_of(app).in_flight.wait_settled(["42"], timeout=5)  # the chain has its answer

    client = app.test_client()
    response = client.post(
        "/runs/42/trigger", json={"pendingData": {"userInput": "Call back"}}, headers=auth_header(7)
    )
    assert response.status_code == 200, response.json
    assert response.json == {"triggered": True}
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 2)
    assert orchestrator.updates(42)[1]["executionStatus"] == {"type": "success"}

    steps = client.get("/runs/42", headers=auth_header(7)).json["steps"]
    assert steps == [
        {"type": "guidance", "stepIndex": 0, "executionResult": {"userInput": "Call back"}}
    ]

"""Log output: its format (JSON unless a terminal, ``--json``/``--pretty`` force one), the fields
of the step line, and what it never contains: secrets, tokens, record values, user input and AI
answers — checked on real chains logged at DEBUG in both formats."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from executor.extension import runner_of
from executor.logs import TextFormatter, configure_logging
from tests.conftest import AUTH_SECRET, make_token
from tests.fakes.agent import FakeAgent
from tests.fakes.model import FakeModel
from tests.fakes.orchestrator import (
    ENV_SECRET,
    FakeOrchestrator,
    condition_step,
    guidance_step,
    record_step,
)
from tests.processes import REPO, executor_environment
from tests.waiting import eventually

AI_API_KEY = "sk-canary-api-key-0123456789"
USER_TOKEN = make_token(7)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _emit_with(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, fmt: str) -> str:
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info", fmt)
    logging.getLogger("executor.test").info("Step executed", extra={"run_id": "42"})
    return stream.getvalue()


@pytest.mark.parametrize(
    ("terminal", "fmt", "json_expected"),
    [
        (False, "auto", True),  # production: not a terminal
        (True, "auto", False),
        (True, "json", True),  # --json
        (False, "text", False),  # --pretty
    ],
)
def test_the_format_follows_the_terminal_unless_forced(
    monkeypatch, restore_logging, terminal, fmt, json_expected
):
    stream = _Terminal() if terminal else io.StringIO()
    [line] = _emit_with(monkeypatch, stream, fmt).splitlines()
    if json_expected:
        record = json.loads(line)
        assert (record["message"], record["run_id"], record["level"]) == (
            "Step executed",
            "42",
            "Info",
        )
    else:
        assert line.endswith("Info  Step executed  run_id=42")


def test_a_cli_on_a_terminal_logs_text_and_json_when_asked(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    """The real command, its stderr a pseudo-terminal: readable text; with --json, JSON."""
    env = executor_environment(orchestrator, tmp_path, HTTP_HOST="127.0.0.1", HTTP_PORT="0")
    del env["LOG_FORMAT"]
    for flags, expect_json in (([], False), (["--json"], True)):
        parent, child = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "executor", "serve", "--in-memory", *flags],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=child,
        )
        os.close(child)
        output = b""
        try:
            while b"running" not in output:
                chunk = os.read(parent, 4096)  # blocks until the process writes (or ends)
                assert chunk, output
                output += chunk
        finally:
            process.terminate()
            assert process.wait(timeout=60) == 0
            os.close(parent)
        first = output.decode().splitlines()[0]
        assert first.startswith("{") is expect_json, output


# --- nothing private in the logs ---------------------------------------------------------------


@pytest.fixture
def captured(restore_logging: None, monkeypatch: pytest.MonkeyPatch) -> Callable[[], str]:
    """The process's log output at DEBUG as production writes it (JSON on stderr), and as text."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging("debug", "json")
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(TextFormatter())
    logging.getLogger().addHandler(handler)

    def read() -> str:
        return stderr.getvalue() + "\n" + text.getvalue()

    return read


def trigger(app: Flask, run_id: int, pending_data: Any = None) -> None:
    body = {} if pending_data is None else {"pendingData": pending_data}
    response = app.test_client().post(
        f"/runs/{run_id}/trigger", json=body, headers={"Authorization": f"Bearer {USER_TOKEN}"}
    )
    assert response.status_code == 200, response.json
    assert runner_of(app).in_flight.wait_settled([str(run_id)], timeout=10)


def test_secrets_tokens_and_customer_data_never_reach_the_logs(
    make_app: Callable[..., Flask],
    orchestrator: FakeOrchestrator,
    agent: FakeAgent,
    model: FakeModel,
    captured: Callable[[], str],
) -> None:
    app = make_app(
        POLLING_ENABLED=False,
        AI_PROVIDER="openai",
        AI_MODEL="gpt-test",
        AI_API_KEY=AI_API_KEY,
        AI_BASE_URL=model.openai_base_url,
        AI_INVOKE_TIMEOUT_S=2,
    )
    runner_of(app).start()
    update = "update-data"
    # Record values read, written, and refused; an AI decision and an AI answer refused; the
    # user's free text; a failing agent.
    orchestrator.add_run(1, [record_step(fieldNames=["name", "email"])], record_id="1")
    trigger(app, 1)
    orchestrator.add_run(
        2, [record_step(update, fieldName="name", value="Zelda Canary")], record_id="1"
    )
    trigger(app, 2)
    model.answer(
        "choose-gateway-option",
        {"option": "Yes", "reasoning": "reasoning-canary", "question": "VIP?"},
    )
    orchestrator.add_run(3, [condition_step(execution_type="fully-automated")], record_id="1")
    trigger(app, 3)
    model.answer(
        "choose-gateway-option",
        {"option": "ai-option-canary", "reasoning": "why-canary", "question": "VIP?"},
    )
    orchestrator.add_run(4, [condition_step(execution_type="fully-automated")], record_id="1")
    trigger(app, 4)
    orchestrator.add_run(5, [guidance_step()], record_id="1")
    trigger(app, 5)
    trigger(app, 5, {"userInput": "pending-note-canary"})
    orchestrator.add_run(
        6, [record_step(update, "automated-with-confirmation", fieldName="tier", value="silver")]
    )
    trigger(app, 6)
    trigger(app, 6, {"userConfirmed": True, "value": "pending-value-canary"})
    agent.fail("/forest/customers/1", 500)
    orchestrator.add_run(
        7, [record_step(update, fieldName="name", value="Failed Canary")], record_id="1"
    )
    trigger(app, 7)
    # An agent that echoes the refused value in its error (as validation errors may).
    echo = {"errors": [{"detail": "Invalid value 'Echoed Canary' for field name"}]}
    agent.fail("/forest/customers/2", 400, body=echo)
    orchestrator.add_run(8, [record_step(update, fieldName="name", value="x")], record_id="2")
    trigger(app, 8)
    steps = app.test_client().get("/runs/1", headers={"Authorization": f"Bearer {USER_TOKEN}"})
    assert "Ada Lovelace" in steps.get_data(as_text=True)  # the API shows it; logs must not
    assert eventually(lambda: all(e["status"] != "pending" for e in orchestrator.activity_logs))
    outcomes = [
        orchestrator.updates(run)[-1]["stepUpdate"]["attributes"]["context"]["status"]
        for run in range(1, 9)
    ]
    assert outcomes == ["success", "success", "success", "error"] + ["success"] + ["error"] * 3
    runner_of(app).stop()

    output = captured()
    assert output.count("Step executed") == 2 * 10  # both formats, every step
    forbidden = {
        "FOREST_ENV_SECRET": ENV_SECRET,
        "FOREST_AUTH_SECRET": AUTH_SECRET,
        "AI API key": AI_API_KEY,
        "user JWT": USER_TOKEN,
        "user JWT signature": USER_TOKEN.rsplit(".", 1)[1],
        "serverToken": "server-token-",
        "record value read": "Ada Lovelace",
        "record email read": "ada@example.com",
        "record value written": "Zelda Canary",
        "record value of a failed write": "Failed Canary",
        "record value echoed by the agent": "Echoed Canary",
        "AI reasoning": "reasoning-canary",
        "refused AI answer": "ai-option-canary",
        "reasoning of a refused AI answer": "why-canary",
        "user pendingData text": "pending-note-canary",
        "user pendingData value": "pending-value-canary",
    }
    leaks = [name for name, value in forbidden.items() if value in output]
    assert leaks == [], [
        line for line in output.splitlines() if any(v in line for v in forbidden.values())
    ]


def test_the_step_line_carries_the_run_step_type_and_duration(
    make_app: Callable[..., Flask], orchestrator: FakeOrchestrator, captured: Callable[[], str]
) -> None:
    app = make_app(POLLING_ENABLED=False)
    runner_of(app).start()
    orchestrator.add_run(9, [guidance_step()])
    trigger(app, 9)
    runner_of(app).stop()
    records = [json.loads(line) for line in captured().splitlines() if line.startswith("{")]
    [step] = [r for r in records if r["message"] == "Step executed"]
    assert step["run_id"] == "9"
    assert step["step_index"] == 0
    assert step["step_type"] == "guidance"
    assert isinstance(step["duration_ms"], float) and step["duration_ms"] >= 0
    assert step["status"] == "awaiting-input"

"""The sandbox: its SQLite agent keeps its rows, and the demo runs workflows end to end, answered
from the terminal, with curl, or automatically, as a newcomer would run it."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from executor.sandbox.agent import SandboxAgent
from executor.sandbox.demo import DemoOptions, run_demo
from executor.sandbox.orchestrator import API, SandboxOrchestrator
from tests.conftest import AUTH_SECRET
from tests.processes import REPO

TIMEZONE = {"timezone": "Europe/Paris"}
SAMPLE_STEPS = [
    "Call the customer",
    "Loyal customer?",
    "Read the customer",
    "Upgrade to gold",
    "Load the customer's company",
    "Read the company",
    "Send the invoice",
]
CURL_GET = re.compile(
    r"curl -s (http://127\.0\.0\.1:\d+)/runs/1 -H 'Authorization: Bearer ([^']+)'"
)
CURL_TRIGGER = re.compile(
    r"curl -s -X POST (http://127\.0\.0\.1:\d+)/runs/1/trigger -H 'Authorization: Bearer ([^']+)'"
)


def agent_header(secret: str = AUTH_SECRET) -> dict[str, str]:
    now = int(time.time())
    user = {"id": 7, "email": "ada@example.com", "firstName": "Ada", "lastName": "", "team": ""}
    claims = user | {
        "renderingId": 3,
        "role": "Admin",
        "permissionLevel": "admin",
        "tags": {},
        "first_name": "Ada",
        "last_name": "",
        "rendering_id": 3,
        "permission_level": "admin",
        "scope": "step-execution",
        "iat": now,
        "exp": now + 300,
    }
    return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}


# --- the SQLite agent -----------------------------------------------------------------------------


def test_the_sqlite_agent_is_seeded_once_and_keeps_its_rows_across_restarts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.sqlite3"
    with SandboxAgent.with_sqlite(AUTH_SECRET, path) as first:
        response = httpx.put(
            f"{first.url}/forest/customers/2",
            params=TIMEZONE,
            headers=agent_header(),
            json={"data": {"type": "customers", "id": "2", "attributes": {"vip": True}}},
        )
        assert response.status_code == 200, response.text
        first.remove_record("orders", "201")
    # A second start over the same file does not seed again (that seed would replace Grace).
    seed = {"customers": [{"id": 2, "name": "Someone else"}]}
    with SandboxAgent.with_sqlite(AUTH_SECRET, path, dataset=seed) as second:
        read = httpx.get(
            f"{second.url}/forest/customers/2", params=TIMEZONE, headers=agent_header()
        )
        attributes = read.json()["data"]["attributes"]
        assert attributes["name"] == "Grace Hopper"
        assert attributes["vip"] is True  # a boolean again, not SQLite's 1
        assert second.record("orders", "201") is None
        assert second.record("subscriptions", "pro|2025") is not None  # composite key
    # A plain SQLite file, one table per collection, the hidden foreign keys as columns.
    with sqlite3.connect(path) as db:
        assert db.execute(
            "SELECT name, vip, company_id FROM customers WHERE id = 2"
        ).fetchone() == (
            "Grace Hopper",
            1,
            2,
        )


def test_a_long_lived_sandbox_orchestrator_does_not_keep_every_poll() -> None:
    secret = "cd" * 32
    with SandboxOrchestrator(env_secret=secret, record_polls=False) as orchestrator:
        orchestrator.add_run(1, [{"type": "task", "taskType": "guideline", "outgoing": []}])
        headers = {"forest-secret-key": secret}
        for _ in range(3):
            polled = httpx.get(f"{orchestrator.url}{API}/pending-run", headers=headers)
            assert polled.status_code == 200
        update = {
            "runId": 1,
            "stepUpdate": {"stepIndex": 0, "attributes": {"done": True, "context": {}}},
            "executionStatus": {"type": "success"},
        }
        httpx.post(f"{orchestrator.url}{API}/update-step", headers=headers, json=update)
        assert orchestrator.count(f"{API}/pending-run") == 0
        assert orchestrator.updates(1) == [update]
        assert orchestrator.runs["1"].finished


# --- the demo, in this process --------------------------------------------------------------------


class Transcript(io.StringIO):
    """The demo's output, which a test can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            written = super().write(text)
            self._changed.notify_all()
            return written

    def wait_for(self, text: str, timeout: float = 20) -> str:
        with self._changed:
            assert self._changed.wait_for(lambda: text in self.getvalue(), timeout), (
                f"{text!r} never came:\n{self.getvalue()}"
            )
            return self.getvalue()


class Terminal:
    """A terminal someone types into (stdin as the demo reads it)."""

    def __init__(self) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()

    def isatty(self) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        while (line := self._lines.get()) is not None:
            yield line

    def type(self, line: str) -> None:
        self._lines.put(line + "\n")

    def close(self) -> None:
        self._lines.put(None)


class DemoThread:
    def __init__(self, options: DemoOptions, stdin: Any) -> None:
        self.out = Transcript()
        self.code: int | None = None
        self._thread = threading.Thread(
            target=self._run, args=(options, stdin), name="demo-under-test", daemon=True
        )
        self._thread.start()

    def _run(self, options: DemoOptions, stdin: Any) -> None:
        self.code = run_demo(options, out=self.out, stdin=stdin)

    def finish(self) -> str:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), self.out.getvalue()
        assert self.code == 0
        return self.out.getvalue()


def test_the_demo_asks_the_terminal_and_takes_an_answer_sent_with_curl(tmp_path: Path) -> None:
    terminal = Terminal()
    demo = DemoThread(
        DemoOptions(port=0, data_dir=tmp_path / "data", exit_when_done=True), terminal
    )
    demo.out.wait_for("Your note: ")
    terminal.type("Called Grace; she is happy.")
    demo.out.wait_for("Choose 1-2: ")
    terminal.type("3")
    demo.out.wait_for("Type a number from 1 to 2.")
    terminal.type("yes")
    transcript = demo.out.wait_for("Confirm? [Y/n]: ")
    # Someone else answers the update with the printed curl: the demo notices and goes on.
    url, token = CURL_TRIGGER.findall(transcript)[-1]
    response = httpx.post(
        f"{url}/runs/1/trigger",
        headers={"Authorization": f"Bearer {token}"},
        json={"pendingData": {"userConfirmed": False}},
    )
    assert response.status_code == 200, response.text
    demo.out.wait_for("(answered elsewhere)")
    demo.out.wait_for("Load Company: Globex (#2)?")
    terminal.type("")  # Enter: the default, yes
    transcript = demo.finish()
    terminal.close()

    assert 'note: "Called Grace; she is happy."' in transcript
    assert "answer: Yes" in transcript
    assert "✓  success — skipped by the user" in transcript
    assert "loaded Company: companies #2" in transcript
    assert 'name = "Globex"' in transcript
    assert "Run 1 finished: 7 steps, every step succeeded." in transcript
    with sqlite3.connect(tmp_path / "data" / "agent.sqlite3") as db:  # the update was skipped
        assert db.execute("SELECT tier FROM customers WHERE id = 2").fetchone() == ("silver",)


def write_workflow(tmp_path: Path, *steps: dict[str, Any]) -> Path:
    path = tmp_path / "workflow.json"
    path.write_text(
        json.dumps({"name": "Mine", "collection": "customers", "recordId": "1", "steps": steps})
    )
    return path


def test_the_demo_runs_another_workflow_following_the_chosen_branch(tmp_path: Path) -> None:
    workflow = write_workflow(
        tmp_path,
        {
            "id": "vip",
            "type": "condition",
            "executionType": "manual",
            "title": "VIP?",
            "branches": {"Yes": "read", "No": None},
            "demoAnswer": {"selectedOption": "No"},
        },
        {"id": "read", "type": "read-record", "preRecordedArgs": {"fieldNames": ["name"]}},
    )
    demo = DemoThread(
        DemoOptions(workflow=workflow, port=0, data_dir=tmp_path / "data", exit_when_done=True),
        io.StringIO(""),  # not a terminal: answered automatically
    )
    transcript = demo.finish()
    assert '(answered automatically: {"selectedOption": "No"})' in transcript
    assert "[1] VIP?  (condition, manual)" in transcript
    assert "Read" not in transcript.split("[1] VIP?")[1]  # the No branch ends the run
    assert "Run 1 finished: 1 steps, every step succeeded." in transcript


def test_the_demo_shows_a_failed_step_and_stops_the_run(tmp_path: Path) -> None:
    workflow = write_workflow(
        tmp_path,
        {
            "id": "read",
            "type": "read-record",
            "title": "Read a field that is not there",
            "preRecordedArgs": {"fieldNames": ["shoe_size"]},
            "next": "after",
        },
        {"id": "after", "type": "guidance", "title": "Never reached"},
    )
    demo = DemoThread(
        DemoOptions(workflow=workflow, port=0, data_dir=tmp_path / "data", exit_when_done=True),
        io.StringIO(""),
    )
    transcript = demo.finish()
    assert "✗  error: " in transcript
    assert "Never reached" not in transcript
    assert "Run 1 finished: 1 steps, with an error." in transcript


def test_a_confirmed_action_is_run_by_the_demo_as_the_front_would(tmp_path: Path) -> None:
    workflow = write_workflow(
        tmp_path,
        {
            "id": "invoice",
            "type": "trigger-action",
            "executionType": "automated-with-confirmation",
            "title": "Send the invoice",
            "preRecordedArgs": {
                "selectedRecordStepId": "workflow-start",
                "actionName": "send-invoice",
            },
            "next": "archive",
        },
        {
            "id": "archive",
            "type": "trigger-action",
            "executionType": "manual",
            "title": "Archive",
            "preRecordedArgs": {"selectedRecordStepId": "workflow-start", "actionName": "archive"},
        },
    )
    terminal = Terminal()
    demo = DemoThread(
        DemoOptions(workflow=workflow, port=0, data_dir=tmp_path / "data", exit_when_done=True),
        terminal,
    )
    demo.out.wait_for('Run the action "Send invoice"?')
    terminal.type("y")
    demo.out.wait_for('Run the action "Archive"?')
    terminal.type("y")  # the agent asks for an approval the sandbox front cannot give
    transcript = demo.finish()
    terminal.close()
    assert 'Send invoice: {"success": "Invoice sent"}' in transcript
    assert "(the agent refused the action: This action requires to be approved.; skipped)" in (
        transcript
    )
    assert "Run 1 finished: 2 steps, every step succeeded." in transcript


def test_the_demo_refuses_a_start_record_its_agent_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = tmp_path / "workflow.json"
    workflow.write_text(
        json.dumps(
            {
                "name": "Mine",
                "collection": "customers",
                "recordId": "999",
                "steps": [{"id": "a", "type": "guidance"}],
            }
        )
    )
    code = run_demo(DemoOptions(workflow=workflow, port=0, data_dir=tmp_path / "data"))
    assert code == 1
    assert "Error: no record '999' in 'customers'" in capsys.readouterr().err


# --- the demo as a newcomer runs it ---------------------------------------------------------------


@pytest.mark.slow
def test_workflow_executor_demo_runs_the_sample_and_leaves_the_api_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOREST_", "DATABASE_"))}
    env["PYTHONIOENCODING"] = "utf-8"
    with subprocess.Popen(
        [sys.executable, "-m", "executor", "demo", "--no-input", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    ) as process:
        try:
            transcript = _read_until(process, "stays up until Ctrl-C")
            _check_the_sample_ran(transcript, tmp_path)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(timeout=20)
            finally:
                process.kill()
        errors = process.stderr.read() if process.stderr else ""
    assert code == 0, errors


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 60) -> str:
    """The process's output up to the line holding ``marker`` (a reader thread feeds a queue so
    the wait has a deadline)."""
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=read, name="demo-stdout", daemon=True).start()
    output: list[str] = []
    deadline = time.monotonic() + timeout
    while not output or marker not in output[-1]:
        output.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
    return "".join(output)


def _check_the_sample_ran(transcript: str, tmp_path: Path) -> None:
    for title in SAMPLE_STEPS:
        assert title in transcript
    assert transcript.count("✓  success") == len(SAMPLE_STEPS), transcript
    assert "Run 1 finished: 7 steps, every step succeeded." in transcript
    assert (tmp_path / "sandbox-data" / "agent.sqlite3").exists()

    url, token = CURL_GET.findall(transcript)[0]
    response = httpx.get(f"{url}/runs/1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    steps = response.json()["steps"]
    assert [s["type"] for s in steps] == [
        "guidance",
        "condition",
        "read-record",
        "update-record",
        "load-related-record",
        "read-record",
        "trigger-action",
    ]
    assert steps[3]["executionResult"]["updatedValues"]["tier"] == "gold"
    assert httpx.get(f"{url}/runs/1").status_code == 401  # the token is what lets you in


@pytest.mark.slow
def test_an_installed_package_ships_the_sample_workflow(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(
        REPO / "executor", source / "executor", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("workflow_executor-*.whl"))
    assert "executor/sandbox/workflows/upgrade-customer.json" in zipfile.ZipFile(wheel).namelist()

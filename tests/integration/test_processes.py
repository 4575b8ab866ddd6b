"""The executor as people start it: the CLI, ``python -m executor`` and ``flask run``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from executor import __version__
from tests.conftest import auth_header
from tests.fakes.orchestrator import API, FakeOrchestrator, guidance_step
from tests.processes import REPO, executor_environment, free_port
from tests.waiting import eventually

pytestmark = pytest.mark.slow


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def logged(self, predicate: Callable[[list[str]], bool], timeout: float = 30) -> bool:
        """Wait until the log satisfies ``predicate``; give up early if the process ended."""
        return eventually(
            lambda: self.popen.poll() is not None or predicate(self.messages()), timeout
        ) and predicate(self.messages())

    def records(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def messages(self) -> list[str]:
        return [r["message"] for r in self.records()]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        return self.popen.wait(timeout=60)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


def test_version_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "executor", "--version"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"workflow-executor {__version__}"


def test_bad_settings_stop_start_up_with_one_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOREST_", "AGENT_"))}
    env.update({"FOREST_ENV_SECRET": "not-hex", "POLLING_INTERVAL_S": "-5"})
    env["EXECUTOR_INSTANCE_PATH"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "executor"], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: Invalid configuration:")
    for expected in (
        "FOREST_ENV_SECRET must be 64 lowercase hexadecimal characters",
        "FOREST_AUTH_SECRET is required",
        "AGENT_URL is required",
        "POLLING_INTERVAL_S must be a positive integer",
    ):
        assert expected in lines[0]


def test_the_cli_serves_then_drains_on_sigterm_and_exits_0(
    orchestrator: FakeOrchestrator, tmp_path: Path, processes: list[Process]
) -> None:
    env = executor_environment(orchestrator, tmp_path, HTTP_HOST="127.0.0.1", HTTP_PORT="0")
    cli = Process([sys.executable, "-m", "executor", "serve"], env, tmp_path / "cli.log")
    processes.append(cli)
    assert cli.logged(lambda ms: any(m.startswith("Listening on") for m in ms)), cli.log.read_text()
    listening = next(m for m in cli.messages() if m.startswith("Listening on"))
    port = int(re.search(r":(\d+) ", listening).group(1))  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"

    orchestrator.add_run(42, [guidance_step("manual")])
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
    answer = httpx.post(
        f"{base}/runs/42/trigger", json={"pendingData": {"userInput": "ok"}}, headers=auth_header()
    )
    assert answer.status_code == 200
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 2)

    assert cli.stop(signal.SIGTERM) == 0
    messages = cli.messages()
    assert "Received SIGTERM — draining" in messages
    assert messages[-1] == "Executor stopped"


def test_sigint_also_drains_and_exits_0(
    orchestrator: FakeOrchestrator, tmp_path: Path, processes: list[Process]
) -> None:
    env = executor_environment(orchestrator, tmp_path, HTTP_HOST="127.0.0.1", HTTP_PORT="0")
    cli = Process([sys.executable, "-m", "executor"], env, tmp_path / "cli.log")
    processes.append(cli)
    assert cli.logged(lambda ms: "Executor 0.1.0 running" in ms), cli.log.read_text()
    assert cli.stop(signal.SIGINT) == 0
    assert "Executor stopped" in cli.messages()


def test_a_busy_port_fails_the_cli_with_exit_1(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = executor_environment(
            orchestrator, tmp_path, HTTP_HOST="127.0.0.1", HTTP_PORT=str(port)
        )
        result = subprocess.run(
            [sys.executable, "-m", "executor"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"Error: Could not listen on 127.0.0.1:{port}" in result.stderr


def test_flask_run_with_the_reloader_starts_one_runner(
    orchestrator: FakeOrchestrator, tmp_path: Path, processes: list[Process]
) -> None:
    port = free_port()
    env = executor_environment(orchestrator, tmp_path)
    flask = Process(
        [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--reload", "--port", str(port)],
        env,
        tmp_path / "flask.log",
    )
    processes.append(flask)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    assert eventually(healthy, 30), flask.log.read_text()
    orchestrator.add_run(42, [guidance_step("manual")])
    assert orchestrator.wait_until(lambda: len(orchestrator.updates(42)) == 1)
    # The reloader's parent imported the app too, but only the serving child runs an executor.
    running = [r for r in flask.records() if r["message"].startswith("Executor 0.1.0 running")]
    assert len(running) == 1
    assert running[0]["pid"] != flask.popen.pid
    assert orchestrator.count(f"{API}/executor-metadata") == 1


def test_flask_commands_other_than_run_start_no_runner(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    env = executor_environment(orchestrator, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "runs.trigger_run" in result.stdout
    assert "Executor 0.1.0 running" not in result.stderr
    assert orchestrator.count(API) == 0

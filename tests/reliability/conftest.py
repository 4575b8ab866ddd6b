"""Fixtures of the reliability suite: executor processes that are always killed, in-process apps
that are always stopped, and a PostgreSQL schema of one's own."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis.configuration import set_hypothesis_home_dir

from executor import create_app
from executor.extension import runner_of
from tests.conftest import base_config
from tests.fakes.orchestrator import FakeOrchestrator
from tests.reliability.support import ExecutorProcess

# Hypothesis keeps caches (of Unicode data, of constants) beside the examples; not in the work tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "workflow-executor-hypothesis")

StartExecutor = Callable[..., ExecutorProcess]
BuildApp = Callable[..., Flask]


@pytest.fixture
def executors(tmp_path: Path) -> Iterator[StartExecutor]:
    """Start ``python -m executor`` processes; every one still alive is SIGKILLed afterwards."""
    started: list[ExecutorProcess] = []

    def start(env: dict[str, str], name: str = "executor") -> ExecutorProcess:
        process = ExecutorProcess(env, tmp_path / f"{name}-{len(started) + 1}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def apps() -> Iterator[BuildApp]:
    """Build in-process executor apps against a given orchestrator; their runners are stopped
    afterwards, and a stop that hangs fails the test instead of the session."""
    built: list[Flask] = []

    def build(orchestrator: FakeOrchestrator, services: Any = None, **overrides: Any) -> Flask:
        app = create_app(base_config(orchestrator, **overrides), services=services)
        built.append(app)
        return app

    yield build
    hung = [app for app in built if not stopped(app, timeout=60)]
    if hung:
        pytest.fail(f"Runner.stop() did not return for {len(hung)} app(s): a deadlock?")


def stopped(app: Flask, timeout: float) -> bool:
    """Stop the app's runner; False if that did not return in time (the stopping thread is left
    behind, as a daemon, rather than hanging the whole test session)."""
    stopper = threading.Thread(target=runner_of(app).stop, name="test-stopper", daemon=True)
    stopper.start()
    stopper.join(timeout)
    return not stopper.is_alive()

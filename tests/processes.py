"""Helpers for tests that start the executor as a separate process."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests.conftest import AUTH_SECRET
from tests.fakes.orchestrator import ENV_SECRET, FakeOrchestrator

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def executor_environment(
    orchestrator: FakeOrchestrator, tmp_path: Path, **extra: str
) -> dict[str, str]:
    """This process's environment, less any executor settings of its own, pointed at the fake
    orchestrator with a SQLite store in ``tmp_path`` and JSON logs."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FOREST_", "DATABASE_", "FLASK_", "WERKZEUG_"))
    }
    env.update(
        {
            "FOREST_ENV_SECRET": ENV_SECRET,
            "FOREST_AUTH_SECRET": AUTH_SECRET,
            "AGENT_URL": orchestrator.agent_url,
            "FOREST_SERVER_URL": orchestrator.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'runs.sqlite3'}",
            "POLLING_INTERVAL_S": "1",
            "FIRST_POLL_DELAY_S": "0",
            "LOG_FORMAT": "json",
            **extra,
        }
    )
    return env

"""Shared fixtures: a fake orchestrator on a loopback port, settings pointing at it, tokens."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask

from executor import create_app
from executor.adapters.agent import AgentClient
from executor.adapters.forest_server import ActivityLogClient, ApprovalClient
from executor.adapters.orchestrator import OrchestratorClient
from executor.adapters.stores.memory import MemoryRunStore
from executor.extension import executor_state
from executor.runner.services import Services
from executor.steps.registry import StepRegistry
from tests.fakes.agent import FakeAgent, collection_schemas
from tests.fakes.model import FakeModel
from tests.fakes.orchestrator import ENV_SECRET, FakeOrchestrator
from tests.postgres import fresh_schema

# Also a valid secret for the Python agent, which accepts only ^[-~/\w]*$.
AUTH_SECRET = "test-auth-secret-that-is-long-enough-for-hs256"


def make_token(
    user_id: Any = 7, *, secret: str = AUTH_SECRET, expires_in: int = 3600, **claims: Any
) -> str:
    now = int(time.time())
    payload = {"id": user_id, "iat": now, "exp": now + expires_in, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def auth_header(user_id: Any = 7, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user_id, **kwargs)}"}


@pytest.fixture(autouse=True)
def isolated_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep tests away from a developer's own instance/config.py and run store."""
    instance = tmp_path / "instance"
    instance.mkdir()
    monkeypatch.setenv("EXECUTOR_INSTANCE_PATH", str(instance))
    return instance


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with FakeAgent(AUTH_SECRET) as fake:
        yield fake


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def orchestrator(agent: FakeAgent) -> Iterator[FakeOrchestrator]:
    """The fake orchestrator, serving the fake agent's collection schemas."""
    with FakeOrchestrator() as fake:
        fake.agent_url = agent.url
        fake.collection_schemas = collection_schemas(agent)
        yield fake


def base_config(orchestrator: FakeOrchestrator, **overrides: Any) -> dict[str, Any]:
    """Settings for a fast, hermetic executor talking to the fakes."""
    config: dict[str, Any] = {
        "FOREST_ENV_SECRET": ENV_SECRET,
        "FOREST_AUTH_SECRET": AUTH_SECRET,
        "AGENT_URL": orchestrator.agent_url,
        "FOREST_SERVER_URL": orchestrator.url,
        "IN_MEMORY_STORE": True,
        "POLLING_INTERVAL_S": 0.05,
        "FIRST_POLL_DELAY_S": 0,
        "POLL_BACKOFF_MAX_S": 0.2,
        "STOP_TIMEOUT_S": 5,
        "STEP_TIMEOUT_S": 5,
    }
    config.update(overrides)
    return config


@pytest.fixture
def make_app(orchestrator: FakeOrchestrator, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build executor apps against the fake orchestrator; their runners are stopped afterwards."""
    apps: list[Flask] = []

    def build(*, services: Any = None, **overrides: Any) -> Flask:
        app = create_app(base_config(orchestrator, **overrides), services=services)
        app.config["TESTING"] = False
        apps.append(app)
        return app

    yield build
    for app in apps:
        executor_state(app).runner.stop()


def services_for(
    orchestrator: FakeOrchestrator, steps: Any = None, store: Any = None, workflow: Any = None
) -> Any:
    """The real adapters against the fakes (with fast retries) and an in-memory store; ``steps``,
    ``store`` and ``workflow`` replace their default."""
    store = store or MemoryRunStore()
    fast = (0.01, 0.01, 0.01)
    return Services(
        workflow=workflow or OrchestratorClient(orchestrator.url, ENV_SECRET, retry_delays_s=fast),
        run_store=store,
        leases=store,
        steps=steps or StepRegistry(),
        agent=AgentClient(orchestrator.agent_url, AUTH_SECRET),
        activity_log=ActivityLogClient(orchestrator.url, retry_delays_s=fast),
        approvals=ApprovalClient(orchestrator.url),
    )


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema of this test's own, dropped afterwards (skipped without PostgreSQL)."""
    yield from fresh_schema()

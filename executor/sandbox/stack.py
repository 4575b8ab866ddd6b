"""The sandbox's three pieces on loopback ports: orchestrator, agent and the executor itself."""

from __future__ import annotations

import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from flask import Flask

from executor.app import create_app
from executor.extension import executor_state
from executor.sandbox.agent import SandboxAgent, collection_schemas
from executor.sandbox.orchestrator import SandboxOrchestrator

HOST = "127.0.0.1"  # nothing of the sandbox listens beyond this machine
USER_ID = 7  # the sandbox's only user (Ada, in the orchestrator's user profile)
TOKEN_LIFETIME_S = 24 * 3600  # the demo's token outlives any demo session


@dataclass(frozen=True)
class StackOptions:
    data_dir: Path  # where the agent's SQLite database lives (kept between demos)
    port: int = 3400  # the executor's API port (0: any free port)
    poll_interval_s: float = 0.5


class Stack:
    """Starts the orchestrator, the agent (over ``<data_dir>/agent.sqlite3``) and an executor
    polling that orchestrator, with secrets made up for this session. :meth:`stop` stops all."""

    def __init__(self, options: StackOptions) -> None:
        self.env_secret = secrets.token_hex(32)
        self.auth_secret = secrets.token_urlsafe(32)
        options.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = options.data_dir / "agent.sqlite3"
        self.seeded = not self.database.exists()
        self.agent = SandboxAgent.with_sqlite(self.auth_secret, self.database, host=HOST)
        self.orchestrator = SandboxOrchestrator(
            env_secret=self.env_secret, host=HOST, record_polls=False
        )
        self.orchestrator.collection_schemas = collection_schemas(self.agent)
        # The executor's private run store lives as long as this session: run ids start again at
        # 1 with each new orchestrator, so an old store would replay old steps.
        self._store_dir = tempfile.TemporaryDirectory(prefix="workflow-executor-demo-")
        self.run_store = Path(self._store_dir.name) / "executor.sqlite3"
        try:
            self.app: Flask = create_app(
                {
                    "FOREST_ENV_SECRET": self.env_secret,
                    "FOREST_AUTH_SECRET": self.auth_secret,
                    # MCP OAuth credentials can be deposited and tried, and no start-up warning.
                    "FOREST_EXECUTOR_ENCRYPTION_KEY": secrets.token_urlsafe(32),
                    "EXECUTOR_ENV": "development",
                    "AGENT_URL": self.agent.url,
                    "FOREST_SERVER_URL": self.orchestrator.url,
                    "DATABASE_URL": f"sqlite:///{self.run_store}",
                    "HTTP_HOST": HOST,
                    "HTTP_PORT": options.port,
                    "HTTP_SERVER": "werkzeug",
                    "POLLING_INTERVAL_S": options.poll_interval_s,
                    "FIRST_POLL_DELAY_S": 0,
                    "POLL_BACKOFF_MAX_S": 2,
                    "STOP_TIMEOUT_S": 5,
                },
                serve=True,
            )
        except Exception:
            self._close_unstarted()
            raise
        self.runner = executor_state(self.app).runner
        self._started: list[SandboxAgent | SandboxOrchestrator] = []

    @property
    def executor_url(self) -> str:
        return f"http://{HOST}:{self.runner.http_port}"

    def start(self) -> None:
        self._started.append(self.agent.start())
        self._started.append(self.orchestrator.start())
        self.runner.start()

    def stop(self) -> None:
        """Stop what started and release what did not; safe to call once, whatever happened."""
        try:
            self.runner.stop()
        finally:
            for piece in reversed(self._started):
                piece.stop()
            self._started.clear()
            self._close_unstarted()

    def _close_unstarted(self) -> None:
        for piece in (self.agent, self.orchestrator):
            if piece.serving is False:
                piece.close()
        self._store_dir.cleanup()

    def agent_token(self) -> str:
        """A token for the agent's routes, for the sandbox's user (protocol §4.1's claims)."""
        now = int(time.time())
        user = {
            "id": USER_ID,
            "email": "ada@example.com",
            "firstName": "Ada",
            "lastName": "",
            "team": "Operations",
            "renderingId": 3,
            "role": "Admin",
            "permissionLevel": "admin",
            "tags": {"region": "EU"},
        }
        claims = user | {
            "first_name": user["firstName"],
            "last_name": user["lastName"],
            "rendering_id": user["renderingId"],
            "permission_level": user["permissionLevel"],
            "scope": "step-execution",
            "iat": now,
            "exp": now + 300,
        }
        return jwt.encode(claims, self.auth_secret, algorithm="HS256")

    def user_token(self) -> str:
        """A token for the executor's API, as the agent would issue the user at login (§5.2)."""
        now = int(time.time())
        return jwt.encode(
            {"id": USER_ID, "iat": now, "exp": now + TOKEN_LIFETIME_S},
            self.auth_secret,
            algorithm="HS256",
        )

"""``workflow-executor migrate``, ``check`` and ``serve --skip-migrations`` as real processes,
against the fake orchestrator and agent and real SQLite / PostgreSQL stores."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from executor import create_app, runner_of
from executor.errors import ExecutorError, RunStoreError
from executor.extension import executor_state
from tests.conftest import AUTH_SECRET, auth_header, base_config
from tests.fakes.orchestrator import API, ENV_SECRET, FakeOrchestrator, guidance_step
from tests.postgres import POSTGRES_URL
from tests.processes import REPO, executor_environment

pytestmark = pytest.mark.slow

TABLES = {"workflow_step_executions", "workflow_run_leases", "ai_mcp_oauth_credentials"}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "executor", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def sqlite_tables(path: Path) -> set[str]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def assert_no_secret_in(output: str) -> None:
    for secret in (ENV_SECRET, AUTH_SECRET, "pg-password-never-printed"):
        assert secret not in output


# --- migrate ------------------------------------------------------------------------------------


def test_migrate_creates_the_sqlite_tables_then_finds_them_present(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    env = executor_environment(orchestrator, tmp_path)
    database = tmp_path / "runs.sqlite3"

    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"Run store: sqlite:///{database}",
        "Created table workflow_step_executions",
        "Created table workflow_run_leases",
        "Created table ai_mcp_oauth_credentials",
        "The run store is up to date.",
    ]
    assert sqlite_tables(database) == TABLES

    again = run_cli("migrate", env=env)
    assert again.returncode == 0, again.stderr
    assert "Already present: table workflow_step_executions" in again.stdout
    assert "Already present: table workflow_run_leases" in again.stdout
    assert "Already present: table ai_mcp_oauth_credentials" in again.stdout
    assert orchestrator.requests == []  # migrate talks to the database only


def test_migrate_creates_the_postgres_schema_and_tables(
    orchestrator: FakeOrchestrator, tmp_path: Path, pg_schema: str
) -> None:
    assert POSTGRES_URL
    env = executor_environment(
        orchestrator, tmp_path, DATABASE_URL=POSTGRES_URL, DATABASE_SCHEMA=pg_schema
    )
    result = run_cli("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert f"(schema {pg_schema})" in result.stdout.splitlines()[0]
    assert "Created table workflow_step_executions" in result.stdout
    engine = create_engine("postgresql+psycopg://" + POSTGRES_URL.split("://", 1)[1])
    try:
        assert set(inspect(engine).get_table_names(schema=pg_schema)) == TABLES
    finally:
        engine.dispose()
    assert "Already present" in run_cli("migrate", env=env).stdout


def test_migrate_of_an_unreachable_database_fails_clearly_without_its_password(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    env = executor_environment(
        orchestrator,
        tmp_path,
        DATABASE_URL="postgresql://executor:pg-password-never-printed@127.0.0.1:1/runs",
    )
    result = run_cli("migrate", env=env)
    assert result.returncode == 1
    assert "Error: Cannot reach the run store: connection failed" in result.stderr
    assert "127.0.0.1:1/runs" in result.stdout  # where it tried, password hidden
    assert_no_secret_in(result.stdout + result.stderr)


def test_migrate_and_check_of_a_sqlite_file_that_cannot_be_created(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = executor_environment(
        orchestrator, tmp_path, DATABASE_URL=f"sqlite:///{blocker}/sub/runs.sqlite3"
    )
    migrate = run_cli("migrate", env=env)
    assert migrate.returncode == 1
    assert f"Error: Cannot create the folder of the SQLite run store {blocker}/sub" in (
        migrate.stderr
    )
    assert "Traceback" not in migrate.stderr
    check = run_cli("check", env=env)
    assert check.returncode == 1
    assert f"cannot create {blocker}/sub/runs.sqlite3: {blocker} is not a folder" in check.stdout


def test_migrate_with_bad_settings_names_them_and_fails(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOREST_", "AGENT_"))}
    env.update({"EXECUTOR_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "mysql://x"})
    result = run_cli("migrate", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: Invalid configuration:")
    assert "DATABASE_URL must be sqlite:///" in result.stderr


# --- serve --skip-migrations --------------------------------------------------------------------


def test_serve_skipping_migrations_refuses_missing_tables_and_creates_nothing(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    env = executor_environment(orchestrator, tmp_path, HTTP_HOST="127.0.0.1", HTTP_PORT="0")
    result = run_cli("serve", "--skip-migrations", env=env)
    assert result.returncode == 1
    assert (
        "Error: The run store's tables are missing (workflow_step_executions, "
        "workflow_run_leases) and migrations are skipped: run `workflow-executor migrate` first"
    ) in result.stderr
    assert not (tmp_path / "runs.sqlite3").exists()


def test_the_run_migrations_setting_uses_tables_made_by_migrate(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    """The setting behind --skip-migrations, as gunicorn or a host app would use it."""
    database = tmp_path / "runs.sqlite3"
    config = base_config(
        orchestrator,
        IN_MEMORY_STORE=False,
        DATABASE_URL=f"sqlite:///{database}",
        RUN_MIGRATIONS=False,
    )
    before = create_app(config)
    with pytest.raises(RunStoreError, match="run `workflow-executor migrate` first"):
        runner_of(before).start()

    assert run_cli("migrate", env=executor_environment(orchestrator, tmp_path)).returncode == 0
    after = create_app(config)
    runner_of(after).start()
    try:
        orchestrator.add_run(5, [guidance_step()])
        assert orchestrator.wait_until(lambda: len(orchestrator.updates(5)) == 1)
    finally:
        runner_of(after).stop()


def test_skipping_migrations_also_needs_the_credentials_table(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    """A database migrated by an older release has the run store's tables only."""
    database = tmp_path / "runs.sqlite3"
    config = base_config(
        orchestrator,
        IN_MEMORY_STORE=False,
        DATABASE_URL=f"sqlite:///{database}",
        RUN_MIGRATIONS=False,
    )
    assert run_cli("migrate", env=executor_environment(orchestrator, tmp_path)).returncode == 0
    with sqlite3.connect(database) as conn:
        conn.execute("DROP TABLE ai_mcp_oauth_credentials")
    check = run_cli("check", env=executor_environment(orchestrator, tmp_path))
    assert "tables missing (ai_mcp_oauth_credentials)" in check.stdout

    app = create_app(config)
    with pytest.raises(ExecutorError, match=r"credentials table .* is missing"):
        runner_of(app).start()
    runner_of(app).stop()


# --- check --------------------------------------------------------------------------------------


def test_check_names_a_proxy_setting_no_client_can_use(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    env = executor_environment(orchestrator, tmp_path)
    env.update(FOREST_SERVER_URL="http://upstream.invalid", HTTP_PROXY="socks5://127.0.0.1:1080")
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    result = run_cli("check", env=env)
    assert result.returncode == 1
    assert (
        "✗ orchestrator  HTTP_PROXY: only http:// and https:// proxies are supported"
        in result.stdout
    )
    assert "Traceback" not in result.stderr


def test_check_passes_when_everything_is_reachable(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    env = executor_environment(orchestrator, tmp_path)
    assert run_cli("migrate", env=env).returncode == 0
    orchestrator.add_run(8, [guidance_step("manual")])

    result = run_cli("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines[1:6]] == [
        ["✓", "settings"],
        ["✓", "orchestrator"],
        ["✓", "agent"],
        ["✓", "run"],
        ["✓", "AI"],
    ]
    assert lines[-1] == "All checks passed."
    assert_no_secret_in(result.stdout + result.stderr)
    # It reached the orchestrator with the secret, and claimed nothing.
    paths = [request.path for request in orchestrator.requests]
    assert paths == ["/liana/mcp-server-configs-with-details"]
    assert orchestrator.requests[0].headers["Forest-Secret-Key"] == ENV_SECRET
    assert not orchestrator.runs["8"].claimed


def test_check_reports_every_failure_with_its_reason(
    orchestrator: FakeOrchestrator, tmp_path: Path
) -> None:
    other_secret = "cd" * 32
    env = executor_environment(
        orchestrator,
        tmp_path,
        FOREST_ENV_SECRET=other_secret,
        AGENT_URL="http://127.0.0.1:9",
        AI_PROVIDER="openai",
        AI_MODEL="gpt-4.1",
        AI_API_KEY="sk-never-printed",
    )
    result = run_cli("check", env=env)
    assert result.returncode == 1
    output = result.stdout
    assert f"✗ orchestrator  {orchestrator.url} refused FOREST_ENV_SECRET (HTTP 401)" in output
    assert "✗ agent         Agent probe failed: cannot reach http://127.0.0.1:9/forest/" in output
    assert "✗ run store" in output
    assert "tables missing (workflow_step_executions, workflow_run_leases)" in output
    assert "✓ AI            openai, model gpt-4.1, API key set (not called)" in output
    assert output.splitlines()[-1] == "3 checks failed."
    assert_no_secret_in(output + result.stderr)
    for secret in (other_secret, "sk-never-printed"):
        assert secret not in output + result.stderr
    assert not (tmp_path / "runs.sqlite3").exists()  # checking creates nothing


def test_check_lists_every_bad_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOREST_", "AGENT_"))}
    env.update(
        {
            "EXECUTOR_INSTANCE_PATH": str(tmp_path),
            "FOREST_ENV_SECRET": "not-hex",
            "POLLING_INTERVAL_S": "-5",
        }
    )
    result = run_cli("check", env=env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[1] == "✗ settings      invalid:"
    assert lines[2].strip().startswith("FOREST_ENV_SECRET must be 64 lowercase hexadecimal")
    assert lines[3].strip().startswith("FOREST_AUTH_SECRET is required")
    assert lines[4].strip().startswith("AGENT_URL is required")
    assert lines[5].strip() == "POLLING_INTERVAL_S must be a positive integer"
    assert "not-hex" not in result.stdout


def test_check_of_a_postgres_store(
    orchestrator: FakeOrchestrator, tmp_path: Path, pg_schema: str
) -> None:
    assert POSTGRES_URL
    env = executor_environment(
        orchestrator, tmp_path, DATABASE_URL=POSTGRES_URL, DATABASE_SCHEMA=pg_schema
    )
    missing = run_cli("check", env=env)
    assert missing.returncode == 1
    assert f"(schema {pg_schema}): tables missing" in missing.stdout
    assert run_cli("migrate", env=env).returncode == 0
    present = run_cli("check", env=env)
    assert present.returncode == 0, present.stdout
    assert f"(schema {pg_schema}): tables present" in present.stdout
    assert f"{API}/pending-run" not in [r.path for r in orchestrator.requests]


@pytest.fixture
def limited_role(pg_schema: str) -> Iterator[str]:
    """A login role with USAGE on ``pg_schema`` only (created here, empty), as a least-privilege
    deployment would give the executor."""
    assert POSTGRES_URL
    role = f"executor_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        "postgresql+psycopg://" + POSTGRES_URL.split("://", 1)[1], isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'CREATE SCHEMA "{pg_schema}"'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO "{role}"'))
    yield role
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE'))
        conn.execute(text(f'DROP OWNED BY "{role}"'))
        conn.execute(text(f'DROP ROLE "{role}"'))
    admin.dispose()


def test_a_least_privilege_role_runs_on_tables_an_owner_migrated(
    orchestrator: FakeOrchestrator, tmp_path: Path, pg_schema: str, limited_role: str
) -> None:
    assert POSTGRES_URL
    host_and_db = POSTGRES_URL.split("@", 1)[1]
    as_role = executor_environment(
        orchestrator,
        tmp_path,
        DATABASE_URL=f"postgresql://{limited_role}@{host_and_db}",
        DATABASE_SCHEMA=pg_schema,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT="0",
    )
    refused = run_cli("migrate", env=as_role)
    assert refused.returncode == 1
    assert f"Error: Database migration failed: permission denied for schema {pg_schema}" in (
        refused.stderr
    )

    as_owner = {**as_role, "DATABASE_URL": POSTGRES_URL}
    assert run_cli("migrate", env=as_owner).returncode == 0
    check = run_cli("check", env=as_role)
    assert check.returncode == 1
    assert (
        "this user may not read and write workflow_step_executions, workflow_run_leases, "
        "ai_mcp_oauth_credentials"
    ) in check.stdout
    serve = run_cli("serve", "--skip-migrations", env=as_role)
    assert serve.returncode == 1
    assert "Error: This database user may not read and write workflow_step_executions" in (
        serve.stderr
    )

    admin = create_engine("postgresql+psycopg://" + POSTGRES_URL.split("://", 1)[1])
    with admin.begin() as conn:
        conn.execute(
            text(
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{pg_schema}" '
                f'TO "{limited_role}"'
            )
        )
    # Without USAGE on the SERIAL ids' sequences, every insert would still fail.
    check = run_cli("check", env=as_role)
    assert check.returncode == 1
    assert (
        "this user may not read and write workflow_step_executions, ai_mcp_oauth_credentials: "
        "grant it SELECT, INSERT, UPDATE, DELETE on them and USAGE on their id sequences"
    ) in check.stdout
    with admin.begin() as conn:
        conn.execute(
            text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{pg_schema}" TO "{limited_role}"')
        )
    admin.dispose()
    assert run_cli("check", env=as_role).returncode == 0

    # And the role really runs steps on them.
    config = base_config(
        orchestrator,
        IN_MEMORY_STORE=False,
        DATABASE_URL=f"postgresql://{limited_role}@{host_and_db}",
        DATABASE_SCHEMA=pg_schema,
        RUN_MIGRATIONS=False,
    )
    app = create_app({**config, "POLLING_ENABLED": False})
    runner_of(app).start()
    try:
        orchestrator.add_run(5, [guidance_step()])
        triggered = app.test_client().post(
            "/runs/5/trigger", json={"pendingData": {"userInput": "hi"}}, headers=auth_header(7)
        )
        assert triggered.status_code == 200
        assert orchestrator.wait_until(lambda: len(orchestrator.updates(5)) == 1)
        assert executor_state(app).services.run_store.get_step_executions("5") == [
            {"type": "guidance", "stepIndex": 0, "executionResult": {"userInput": "hi"}}
        ]
    finally:
        runner_of(app).stop()

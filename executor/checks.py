"""``workflow-executor check``: can this configuration work? A ✓/✗ checklist, secrets never shown.

Each check reaches one dependency the way the executor does, without changing anything:

- settings: validated like at start-up, every bad variable listed;
- orchestrator: ``GET /liana/mcp-server-configs-with-details`` with the environment secret (§3.3.7).
  It is authenticated like every orchestrator call and reads configuration only. The run endpoints
  are all wrong for a check: ``pending-run`` hands runs out (and may lock them, §3.3.1: the payload
  carries ``lockedAt``), ``available-run`` claims one, ``update-step`` and ``executor-metadata``
  write, and ``access-check`` needs a real run id;
- agent: the start-up probe (§4.2);
- run store: connect and look for the tables, creating nothing;
- AI: which provider the steps will use; no call is made (it would cost a request).
"""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from executor.adapters.agent import AgentClient
from executor.adapters.http import HttpError, JsonHttpClient
from executor.adapters.stores.sql import MISSING_RIGHTS_HINT, SqlRunStore
from executor.adapters.stores.sql_credentials import SqlMcpCredentialStore
from executor.config import Settings
from executor.errors import ExecutorError

ORCHESTRATOR_CHECK_PATH = "/liana/mcp-server-configs-with-details"
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.name:<13} {self.detail}"


def settings_check(problems: list[str] | None) -> Check:
    if not problems:
        return Check("settings", True, "valid")
    return Check("settings", False, "\n    ".join(["invalid:", *problems]))


def orchestrator_check(settings: Settings) -> Check:
    base = settings.forest_server_url
    client = JsonHttpClient(
        base, headers={"forest-secret-key": settings.forest_env_secret}, timeout_s=TIMEOUT_S
    )
    try:
        client.request("GET", ORCHESTRATOR_CHECK_PATH, operation="check")
    except HttpError as error:
        if error.status in (401, 403):
            reason = (
                f"{base} refused FOREST_ENV_SECRET (HTTP {error.status}): use the secret of "
                "this environment"
            )
        elif error.status is None:
            reason = f"cannot reach {base}: {error}"
        else:
            reason = f"{base} answered HTTP {error.status}"
        return Check("orchestrator", False, reason)
    finally:
        client.close()
    return Check("orchestrator", True, f"{base} accepted the environment secret")


def agent_check(settings: Settings) -> Check:
    agent = AgentClient(settings.agent_url, settings.forest_auth_secret)
    try:
        agent.probe()
    except ExecutorError as error:
        return Check("agent", False, str(error))
    finally:
        agent.close()
    return Check("agent", True, f"{settings.agent_url} answered the probe")


def store_check(settings: Settings) -> Check:
    if settings.store_url is None:
        return Check("run store", True, "in memory (IN_MEMORY_STORE): nothing to reach")
    store = SqlRunStore(settings.store_url, schema=settings.database_schema)
    unwritable = _unwritable_sqlite_file(settings.store_url)
    if unwritable:
        return Check("run store", False, f"{store.location}: {unwritable}")
    credentials = SqlMcpCredentialStore(settings.store_url, schema=settings.database_schema)
    try:
        missing = store.missing_tables()
        if not missing and not credentials.table_present():
            missing.append(credentials.table_name)
    except ExecutorError as error:
        return Check("run store", False, f"{store.location}: {error}")
    if missing:
        return Check(
            "run store",
            False,
            f"{store.location}: tables missing ({', '.join(missing)}): run "
            "`workflow-executor migrate` (or start with migrations enabled)",
        )
    try:
        forbidden = store.tables_without_rights() + credentials.tables_without_rights()
    except ExecutorError as error:
        return Check("run store", False, f"{store.location}: {error}")
    if forbidden:
        return Check(
            "run store",
            False,
            f"{store.location}: this user may not read and write {', '.join(forbidden)}: "
            f"{MISSING_RIGHTS_HINT}",
        )
    return Check("run store", True, f"{store.location}: tables present")


def _unwritable_sqlite_file(url: str) -> str | None:
    """Why this process could not write the SQLite file, if it could not (None for PostgreSQL)."""
    database = make_url(url).database
    if not url.startswith("sqlite") or not database:
        return None
    path = Path(database)
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path} is not readable and writable by this user"
        if not os.access(path.parent, os.W_OK | os.X_OK):  # SQLite writes its journal beside it
            return f"the folder {path.parent} is not writable by this user"
        return None
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create {path}: {folder} is not a folder this user can write to"
    return None


def ai_check(settings: Settings) -> Check:
    if settings.ai_provider is None:
        return Check(
            "AI", True, f"the Forest server's AI proxy at {settings.forest_server_url} (not called)"
        )
    where = f" at {settings.ai_base_url}" if settings.ai_base_url else ""
    return Check(
        "AI",
        True,
        f"{settings.ai_provider}{where}, model {settings.ai_model}, API key set (not called)",
    )


def run_checks(settings: Settings) -> t.Iterator[Check]:
    """The checks after the settings', in the order the executor needs its dependencies."""
    checks: tuple[tuple[str, t.Callable[[Settings], Check]], ...] = (
        ("orchestrator", orchestrator_check),
        ("agent", agent_check),
        ("run store", store_check),
        ("AI", ai_check),
    )
    for name, check in checks:
        try:
            yield check(settings)
        except ExecutorError as error:  # e.g. a proxy setting no client can use
            yield Check(name, False, str(error))

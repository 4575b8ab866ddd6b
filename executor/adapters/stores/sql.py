"""SQL run store: SQLite and PostgreSQL through one code path (SQLAlchemy Core), protocol §11.

Beside the protocol's ``workflow_step_executions`` table it keeps ``workflow_run_leases``: which
process is executing which run, so that gunicorn workers and executor instances sharing the store
never execute the same run at once.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    inspect,
    make_url,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from executor.adapters.stores.documents import StoredDocuments
from executor.domain.executions import StepExecutionData
from executor.errors import RunStoreError
from executor.ports import RunLeases, RunStore
from executor.schemas.store import validate_step_execution

log = logging.getLogger(__name__)

# Constant across releases so that old and new instances serialize their migrations (§11.4).
MIGRATION_LOCK_KEY = 6438071259157
SQLITE_BUSY_TIMEOUT_S = 30
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def _tables(schema: str | None) -> tuple[Table, Table]:
    metadata = MetaData(schema=schema)
    executions = Table(
        "workflow_step_executions",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(255), nullable=False),
        Column("step_index", Integer, nullable=False),
        Column("data", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Index("idx_run_id", "run_id"),
        Index("idx_run_id_step_index", "run_id", "step_index", unique=True),
    )
    leases = Table(
        "workflow_run_leases",
        metadata,
        Column("run_id", String(255), primary_key=True),
        Column("owner", String(255), nullable=False),
        Column("expires_at", Float, nullable=False),  # epoch seconds: shared across hosts
    )
    return executions, leases


class SqlRunStore(RunStore, RunLeases):
    """Run store and leases in a SQL database given by a SQLAlchemy URL."""

    def __init__(self, url: str, *, schema: str | None = None, migrate: bool = True) -> None:
        """``migrate=False``: ``init()`` only checks that the tables exist (they were created by
        ``workflow-executor migrate``, or by an owner with more rights than this process)."""
        self._url = url
        self._run_migrations = migrate
        self._is_postgres = url.startswith("postgresql")
        self._schema = (schema or "forest") if self._is_postgres else None  # SQLite has none
        self._executions, self._leases = _tables(self._schema)
        # Statements built once: building them per call was a visible share of a read's CPU. Data
        # is read as the stored text, so a document's digest tells whether it was checked before.
        table = self._executions
        data_text = cast(table.c.data, Text)
        same_run = table.c.run_id == bindparam("run_id")
        same_step = and_(same_run, table.c.step_index == bindparam("step_index"))
        self._select_run = (
            select(table.c.step_index, data_text).where(same_run).order_by(table.c.step_index)
        )
        self._select_step = select(data_text).where(same_step)
        self._delete_step = delete(table).where(same_step)
        self._documents = StoredDocuments()
        self._engine: Engine | None = None
        # Built once: constructing an ON CONFLICT statement (its `excluded` alias) per save was a
        # visible share of a step's CPU. One atomic statement, so two writers of the same key
        # cannot both insert (delete-then-insert, as the reference does, can break the unique
        # index under concurrency).
        insert = self._insert(self._executions)
        self._upsert = insert.on_conflict_do_update(
            index_elements=["run_id", "step_index"],
            set_={"data": insert.excluded.data, "updated_at": insert.excluded.updated_at},
        )

    @property
    def dialect_name(self) -> str:
        return "postgresql" if self._is_postgres else "sqlite"

    # --- lifecycle ------------------------------------------------------------------------------

    def init(self) -> None:
        if self._engine is not None:
            return
        if not self._run_migrations:
            missing = self.missing_tables()  # creates nothing, not even a SQLite file
            if missing:
                raise RunStoreError(
                    f"The run store's tables are missing ({', '.join(missing)}) and migrations "
                    "are skipped: run `workflow-executor migrate` first"
                )
            forbidden = self.tables_without_rights()
            if forbidden:
                raise RunStoreError(
                    f"This database user may not read and write {', '.join(forbidden)}: "
                    f"{MISSING_RIGHTS_HINT}"
                )
            self._engine = self._create_engine()
            return
        engine = self._create_engine()
        try:
            self._migrate(engine)
        except SQLAlchemyError as error:
            engine.dispose()
            log.error("Database migration failed: %s", _describe(error))
            raise RunStoreError(f"Database migration failed: {_describe(error)}") from error
        self._engine = engine

    @property
    def table_names(self) -> list[str]:
        return [self._executions.name, self._leases.name]

    @property
    def location(self) -> str:
        """The database, its password hidden, and the schema: safe to print."""
        where = make_url(self._url).render_as_string(hide_password=True)
        return f"{where} (schema {self._schema})" if self._schema else where

    def missing_tables(self) -> list[str]:
        """The store's tables that do not exist yet. Connects on its own and creates nothing (a
        SQLite file that does not exist lacks every table)."""
        if not self._is_postgres:
            database = make_url(self._url).database
            if database and not Path(database).exists():
                return self.table_names
        engine = self._create_engine()
        try:
            return self._missing_tables(engine)
        except SQLAlchemyError as error:
            raise RunStoreError(f"Cannot reach the run store: {_describe(error)}") from error
        finally:
            engine.dispose()

    def tables_without_rights(self) -> list[str]:
        """PostgreSQL tables this user may not read and write (see :func:`tables_without_rights`);
        always empty for SQLite."""
        if not self._is_postgres:
            return []
        assert self._schema is not None
        engine = self._create_engine()
        try:
            return tables_without_rights(engine, self._schema, self.table_names)
        except SQLAlchemyError as error:
            raise RunStoreError(f"Cannot reach the run store: {_describe(error)}") from error
        finally:
            engine.dispose()

    def _missing_tables(self, engine: Engine) -> list[str]:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names(schema=self._schema))
        return [name for name in self.table_names if name not in present]

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def ping(self) -> None:
        with self._transaction("ping") as conn:
            conn.execute(text("SELECT 1"))

    def _create_engine(self) -> Engine:
        return create_store_engine(self._url)

    def _migrate(self, engine: Engine) -> None:
        if self._is_postgres:
            assert self._schema is not None
            ensure_schema(engine, self._schema)
        with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            if self._is_postgres:
                self._lock_migrations(conn)
            for table in (self._executions, self._leases):
                # IF NOT EXISTS: idempotent, and a database prepared by the reference executor
                # (same table and index names) is adopted as it is.
                conn.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))

    @staticmethod
    def _lock_migrations(conn: Connection) -> None:
        lock_migrations(conn)

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Connection]:
        if self._engine is None:
            raise RunStoreError(f"Run store used before init() ({operation})")
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as error:
            raise RunStoreError(f"Run store {operation} failed: {_describe(error)}") from error

    def _insert(self, table: Table) -> Any:
        return (postgresql.insert if self._is_postgres else sqlite.insert)(table)

    # --- RunStore -------------------------------------------------------------------------------

    def get_step_executions(self, run_id: str) -> list[StepExecutionData]:
        with self._transaction("read") as conn:
            rows = conn.execute(self._select_run, {"run_id": run_id}).all()
        return [self._checked_row(run_id, step_index, data) for step_index, data in rows]

    def get_step_execution(self, run_id: str, step_index: int) -> StepExecutionData | None:
        with self._transaction("read") as conn:
            data = conn.execute(
                self._select_step, {"run_id": run_id, "step_index": step_index}
            ).scalar_one_or_none()
        return None if data is None else self._checked_row(run_id, step_index, data)

    def save_step_execution(self, run_id: str, data: StepExecutionData) -> None:
        try:
            validate_step_execution(data)
        except ValidationError as error:
            raise RunStoreError(f"Refused an invalid step execution: {error.messages}") from error
        now = datetime.now(UTC)
        row = {
            "run_id": run_id,
            "step_index": data["stepIndex"],
            "data": data,
            "created_at": now,
            "updated_at": now,
        }
        with self._transaction("write") as conn:
            conn.execute(self._upsert, row)

    def delete_step_execution(self, run_id: str, step_index: int) -> None:
        with self._transaction("delete") as conn:
            conn.execute(self._delete_step, {"run_id": run_id, "step_index": step_index})

    def _checked_row(self, run_id: str, step_index: int, data: str) -> StepExecutionData:
        where = {"run_id": run_id, "step_index": step_index}
        try:
            document = self._documents.load(data)
        except (ValueError, RecursionError) as error:
            log.error("Stored step execution is not JSON", extra=where)
            message = f"Stored step execution {run_id}/{step_index} is not JSON"
            raise RunStoreError(message) from error
        except ValidationError as error:
            log.error(
                "Stored step execution is invalid: %s",
                error.messages,
                extra=where,
            )
            raise RunStoreError(
                f"Stored step execution {run_id}/{step_index} is invalid: {error.messages}"
            ) from error
        if document.get("stepIndex") != step_index:
            raise RunStoreError(f"Stored step execution {run_id}/{step_index} has another index")
        return document

    # --- RunLeases ------------------------------------------------------------------------------

    def acquire(self, run_id: str, owner: str, ttl_s: float) -> bool:
        table = self._leases
        now = time.time()
        insert = self._insert(table).values(run_id=run_id, owner=owner, expires_at=now + ttl_s)
        statement = insert.on_conflict_do_update(
            index_elements=["run_id"],
            set_={"owner": insert.excluded.owner, "expires_at": insert.excluded.expires_at},
            where=or_(table.c.expires_at < now, table.c.owner == owner),
        ).returning(table.c.run_id)
        with self._transaction("lease") as conn:
            return conn.execute(statement).first() is not None

    def renew(self, run_ids: Collection[str], owner: str, ttl_s: float) -> None:
        if not run_ids:
            return
        table = self._leases
        with self._transaction("lease") as conn:
            conn.execute(
                update(table)
                .where(table.c.owner == owner, table.c.run_id.in_(list(run_ids)))
                .values(expires_at=time.time() + ttl_s)
            )

    def release(self, run_id: str, owner: str) -> None:
        table = self._leases
        with self._transaction("lease") as conn:
            conn.execute(delete(table).where(table.c.run_id == run_id, table.c.owner == owner))


def create_store_engine(url: str) -> Engine:
    """An engine for a store URL: a pool on PostgreSQL; WAL, a busy timeout and
    ``sqlite_immediate`` transactions on SQLite."""
    if url.startswith("postgresql"):
        # Two connections at least: the migration lock holds one while DDL may need another.
        # Connections are bounded in time: a connect that gets no answer, and a connection whose
        # peer vanished (keepalives), fail in seconds rather than after the kernel's minutes.
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            # The URL's own parameters (?connect_timeout=...) win over these defaults.
            connect_args={
                key: value
                for key, value in POSTGRES_CONNECT_ARGS.items()
                if key not in make_url(url).query
            },
        )
    database = make_url(url).database
    if database:
        folder = Path(database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)  # e.g. a fresh instance folder
        except OSError as error:
            raise RunStoreError(
                f"Cannot create the folder of the SQLite run store {folder}: {error.strerror}"
            ) from error
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit transactions skip DDL; SQLAlchemy begins them instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        _enable_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, waiting for it; a deferred transaction that
        # reads then writes can instead fail at once with "database is locked".
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


MISSING_RIGHTS_HINT = (
    "grant it SELECT, INSERT, UPDATE, DELETE on them and USAGE on their id sequences"
)


def tables_without_rights(engine: Engine, schema: str, names: Sequence[str]) -> list[str]:
    """The PostgreSQL tables of ``names`` this user may not read and write. A role that did not
    create them needs SELECT, INSERT, UPDATE and DELETE on each, and USAGE on the sequence of a
    SERIAL id column, without which every insert fails."""
    # The sequences a table owns (SERIAL: dependency 'a', IDENTITY: 'i'); CASE keeps
    # has_sequence_privilege away from rows that are not sequences, whatever the plan.
    query = text(
        "SELECT has_table_privilege(CAST(:table AS text), 'SELECT,INSERT,UPDATE,DELETE') "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class s ON s.oid = d.objid "
        "WHERE d.classid = 'pg_class'::regclass "
        "AND d.refobjid = CAST(CAST(:table AS text) AS regclass) AND d.deptype IN ('a', 'i') "
        "AND CASE WHEN s.relkind = 'S' THEN NOT has_sequence_privilege(s.oid, 'USAGE') "
        "ELSE false END)"
    )
    with engine.connect() as conn:
        return [
            name
            for name in names
            if not conn.execute(query, {"table": f'"{schema}"."{name}"'}).scalar()
        ]


def ensure_schema(engine: Engine, schema: str) -> None:
    """Create the PostgreSQL schema when missing, in its own committed transaction (§11.4), so
    an operator may pre-create it and grant only schema-level rights."""
    with engine.begin() as conn:
        present = conn.execute(
            text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": schema}
        ).first()
        if present is None:
            lock_migrations(conn)
            # The name passed the identifier rule of the configuration (§6.2).
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


def lock_migrations(conn: Connection) -> None:
    """Serialize migrations across instances for the rest of this transaction (§11.4)."""
    conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL, which lets readers proceed while one process writes.

    The switch needs an exclusive lock and SQLite does not wait for it through the busy handler:
    processes opening a fresh file at once (gunicorn workers) get "database is locked" at once.
    The mode is stored in the file, so retrying briefly until one of them has switched it is enough.
    """
    for attempt in Retrying(
        stop=stop_after_delay(SQLITE_BUSY_TIMEOUT_S),
        wait=wait_random(0.005, 0.05),
        retry=retry_if_exception(
            lambda e: isinstance(e, sqlite3.OperationalError) and "locked" in str(e)
        ),
        reraise=True,
    ):
        with attempt:
            cursor.execute("PRAGMA journal_mode=WAL")


def _describe(error: SQLAlchemyError) -> str:
    """A one-line cause without the SQL statement and its parameters (they may hold data)."""
    original = getattr(error, "orig", None)
    return str(original or error.__class__.__name__).splitlines()[0][:300]

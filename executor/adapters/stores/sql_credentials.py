"""SQL MCP OAuth credential store, table ``ai_mcp_oauth_credentials`` (protocol §11.3).

It lives in the run store's database and schema, with its own engine: migration 002 runs when the
runner starts serving (§6.3, §11.4), under the same advisory lock as migration 001.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable

from executor.adapters.stores.sql import (
    MISSING_RIGHTS_HINT,
    _describe,
    create_store_engine,
    ensure_schema,
    lock_migrations,
    tables_without_rights,
)
from executor.errors import CredentialStoreError
from executor.mcp.store import EncryptedCredential, McpCredentialStore, StoredCredential

log = logging.getLogger(__name__)


def _table(schema: str | None) -> Table:
    return Table(
        "ai_mcp_oauth_credentials",
        MetaData(schema=schema),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("user_id", Integer, nullable=False),
        Column("mcp_server_id", String(255), nullable=False),
        Column("refresh_token_enc", LargeBinary, nullable=False),  # BYTEA on PostgreSQL
        Column("client_id", String(255), nullable=True),
        Column("client_secret_enc", LargeBinary, nullable=True),
        Column("client_secret_expires_at", DateTime(timezone=True), nullable=True),
        Column("token_endpoint", String(2048), nullable=False),
        Column("token_endpoint_auth_method", String(64), nullable=True),
        Column("scopes", String(2048), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Index("idx_user_id_mcp_server_id", "user_id", "mcp_server_id", unique=True),
        # Row ids are never reused (SERIAL on PostgreSQL; AUTOINCREMENT on SQLite, which would
        # otherwise hand a deleted row's id to the next insert): a rotation write-back aimed at a
        # replaced credential must find no row.
        sqlite_autoincrement=True,
    )


class SqlMcpCredentialStore(McpCredentialStore):
    """Credentials in the SQL database of a SQLAlchemy URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str, *, schema: str | None = None, migrate: bool = True) -> None:
        """``migrate=False``: ``init()`` only checks that the table exists (created by
        ``workflow-executor migrate``, or by an owner with more rights than this process)."""
        self._url = url
        self._run_migrations = migrate
        self._is_postgres = url.startswith("postgresql")
        self._schema = (schema or "forest") if self._is_postgres else None  # SQLite has none
        self._table = _table(self._schema)
        self._engine: Engine | None = None

    @property
    def table_name(self) -> str:
        return self._table.name

    def init(self) -> None:
        if self._engine is not None:
            return
        engine = create_store_engine(self._url)
        try:
            if self._run_migrations:
                self._migrate(engine)
            elif not self._table_present(engine):
                raise CredentialStoreError(
                    f"The MCP OAuth credentials table ({self._table.name}) is missing and "
                    "migrations are skipped: run `workflow-executor migrate` first"
                )
            elif self._is_postgres and self._forbidden(engine):
                raise CredentialStoreError(
                    f"This database user may not read and write {self._table.name}: "
                    f"{MISSING_RIGHTS_HINT}"
                )
        except SQLAlchemyError as error:
            engine.dispose()
            log.error("MCP OAuth credentials migration failed: %s", _describe(error))
            raise CredentialStoreError(
                f"MCP OAuth credentials migration failed: {_describe(error)}"
            ) from error
        except CredentialStoreError:
            engine.dispose()
            raise
        self._engine = engine

    def table_present(self) -> bool:
        """Whether the table exists; connects on its own and creates nothing."""
        engine = create_store_engine(self._url)
        try:
            return self._table_present(engine)
        except SQLAlchemyError as error:
            raise CredentialStoreError(f"Cannot reach the database: {_describe(error)}") from error
        finally:
            engine.dispose()

    def tables_without_rights(self) -> list[str]:
        """The table, when this PostgreSQL user may not read and write it; [] on SQLite."""
        if not self._is_postgres:
            return []
        engine = create_store_engine(self._url)
        try:
            return [self._table.name] if self._forbidden(engine) else []
        except SQLAlchemyError as error:
            raise CredentialStoreError(f"Cannot reach the database: {_describe(error)}") from error
        finally:
            engine.dispose()

    def _forbidden(self, engine: Engine) -> bool:
        assert self._schema is not None
        return bool(tables_without_rights(engine, self._schema, [self._table.name]))

    def _table_present(self, engine: Engine) -> bool:
        with engine.connect() as conn:
            return bool(inspect(conn).has_table(self._table.name, schema=self._schema))

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def _migrate(self, engine: Engine) -> None:
        """Migration 002: the table and its index in one transaction, idempotent."""
        if self._is_postgres:
            assert self._schema is not None
            ensure_schema(engine, self._schema)
        with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            if self._is_postgres:
                lock_migrations(conn)
            # IF NOT EXISTS: a database prepared by the reference executor is adopted as it is.
            conn.execute(CreateTable(self._table, if_not_exists=True))
            for index in self._table.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))

    @contextmanager
    def _transaction(self, operation: str, *, write: bool = False) -> Iterator[Connection]:
        if self._engine is None:
            raise CredentialStoreError(f"Credential store used before init() ({operation})")
        try:
            with (
                self._engine.connect().execution_options(sqlite_immediate=write) as conn,
                conn.begin(),
            ):
                yield conn
        except SQLAlchemyError as error:
            raise CredentialStoreError(
                f"Credential store {operation} failed: {_describe(error)}"
            ) from error

    def get(self, user_id: int, mcp_server_id: str) -> StoredCredential | None:
        table = self._table
        query = select(table).where(
            table.c.user_id == user_id, table.c.mcp_server_id == mcp_server_id
        )
        with self._transaction("read") as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _stored(row)

    def put(self, credential: EncryptedCredential) -> None:
        table = self._table
        now = datetime.now(UTC)
        values = {
            "user_id": credential.user_id,
            "mcp_server_id": credential.mcp_server_id,
            "refresh_token_enc": credential.refresh_token_enc,
            "client_id": credential.client_id,
            "client_secret_enc": credential.client_secret_enc,
            "client_secret_expires_at": credential.client_secret_expires_at,
            "token_endpoint": credential.token_endpoint,
            "token_endpoint_auth_method": credential.token_endpoint_auth_method,
            "scopes": credential.scopes,
            "created_at": now,
            "updated_at": now,
        }
        # Delete + insert in one transaction (§11.3): the new row gets a new id, so a refresh
        # that read the old row cannot write its rotated token over this deposit.
        with self._transaction("write", write=True) as conn:
            if self._is_postgres:
                # Two deposits of one key at once would both delete nothing and both insert,
                # breaking the unique index: serialize them (SQLite's BEGIN IMMEDIATE already
                # does). The two-int form has a key space of its own, apart from the migrations'.
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:user_id, hashtext(:server_id))"),
                    {"user_id": credential.user_id, "server_id": credential.mcp_server_id},
                )
            conn.execute(
                delete(table).where(
                    table.c.user_id == credential.user_id,
                    table.c.mcp_server_id == credential.mcp_server_id,
                )
            )
            conn.execute(insert(table).values(**values))

    def delete(self, user_id: int, mcp_server_id: str) -> bool:
        table = self._table
        statement = delete(table).where(
            table.c.user_id == user_id, table.c.mcp_server_id == mcp_server_id
        )
        with self._transaction("delete", write=True) as conn:
            return conn.execute(statement).rowcount > 0

    def update_refresh_token(self, row_id: int, refresh_token_enc: bytes) -> bool:
        table = self._table
        statement = (
            update(table)
            .where(table.c.id == row_id)
            .values(refresh_token_enc=refresh_token_enc, updated_at=datetime.now(UTC))
        )
        with self._transaction("rotation write-back", write=True) as conn:
            return conn.execute(statement).rowcount > 0


def _stored(row: Any) -> StoredCredential:
    expires_at = row["client_secret_expires_at"]
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)  # SQLite gives back naive datetimes
    return StoredCredential(
        row_id=row["id"],
        credential=EncryptedCredential(
            user_id=row["user_id"],
            mcp_server_id=row["mcp_server_id"],
            refresh_token_enc=bytes(row["refresh_token_enc"]),
            token_endpoint=row["token_endpoint"],
            client_id=row["client_id"],
            client_secret_enc=(
                None if row["client_secret_enc"] is None else bytes(row["client_secret_enc"])
            ),
            client_secret_expires_at=expires_at,
            token_endpoint_auth_method=row["token_endpoint_auth_method"],
            scopes=row["scopes"],
        ),
    )

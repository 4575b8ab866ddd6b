"""The MCP OAuth credential store on every backend: memory, SQLite, PostgreSQL (§11.3, §11.4)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from executor.adapters.stores.memory_credentials import MemoryMcpCredentialStore
from executor.adapters.stores.sql import SqlRunStore
from executor.adapters.stores.sql_credentials import SqlMcpCredentialStore
from executor.errors import CredentialStoreError
from executor.mcp.store import EncryptedCredential
from tests.postgres import POSTGRES_URL, needs_postgres, sqlalchemy_url

StoreFactory = Callable[[], Any]


def credential(user_id: int = 7, server: str = "srv-1", **changes: Any) -> EncryptedCredential:
    values: dict[str, Any] = {
        "user_id": user_id,
        "mcp_server_id": server,
        "refresh_token_enc": b"\x00\x01encrypted-refresh",
        "token_endpoint": "https://auth.example.com/token",
        **changes,
    }
    return EncryptedCredential(**values)


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=[needs_postgres, pytest.mark.postgres]),
    ]
)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes stores sharing one database, as several instances would."""
    created: list[Any] = []
    memory = MemoryMcpCredentialStore()

    def make() -> Any:
        if request.param == "memory":
            store: Any = memory
        elif request.param == "sqlite":
            store = SqlMcpCredentialStore(f"sqlite:///{tmp_path / 'runs.sqlite3'}")
        else:
            schema = request.getfixturevalue("pg_schema")
            store = SqlMcpCredentialStore(sqlalchemy_url(POSTGRES_URL or ""), schema=schema)
        store.init()
        created.append(store)
        return store

    yield make
    for store in created:
        store.close()


def test_a_deposited_credential_reads_back_whole(make_store: StoreFactory) -> None:
    store = make_store()
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    full = credential(
        client_id="client-1",
        client_secret_enc=b"\xffsecret",
        client_secret_expires_at=expires,
        token_endpoint_auth_method="client_secret_post",
        scopes="read write",
    )
    store.put(full)
    stored = store.get(7, "srv-1")
    assert stored is not None
    assert stored.credential == full
    assert store.get(7, "srv-2") is None
    assert store.get(8, "srv-1") is None


def test_a_new_deposit_replaces_the_old_one_with_a_new_row(make_store: StoreFactory) -> None:
    store = make_store()
    store.put(credential(scopes="old"))
    first = store.get(7, "srv-1")
    store.put(credential(scopes="new", refresh_token_enc=b"new"))
    second = store.get(7, "srv-1")
    assert first is not None and second is not None
    assert second.credential.scopes == "new"
    assert second.row_id != first.row_id
    # A refresh that read the replaced row must not write over the new deposit.
    assert store.update_refresh_token(first.row_id, b"rotated-for-old") is False
    again = store.get(7, "srv-1")
    assert again is not None and again.credential.refresh_token_enc == b"new"


def test_rotation_writes_back_to_the_row_read(make_store: StoreFactory) -> None:
    store = make_store()
    store.put(credential())
    store.put(credential(user_id=8))
    row = store.get(7, "srv-1")
    assert row is not None
    assert store.update_refresh_token(row.row_id, b"rotated") is True
    mine, theirs = store.get(7, "srv-1"), store.get(8, "srv-1")
    assert mine is not None and mine.credential.refresh_token_enc == b"rotated"
    assert mine.row_id == row.row_id
    assert theirs is not None and theirs.credential.refresh_token_enc != b"rotated"


def test_rotation_never_recreates_a_deleted_credential(make_store: StoreFactory) -> None:
    store = make_store()
    store.put(credential())
    row = store.get(7, "srv-1")
    assert row is not None
    assert store.delete(7, "srv-1") is True
    assert store.update_refresh_token(row.row_id, b"rotated") is False
    assert store.get(7, "srv-1") is None
    assert store.delete(7, "srv-1") is False


def test_instances_sharing_a_database_see_each_other(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store()
    first.put(credential())
    stored = second.get(7, "srv-1")
    assert stored is not None and stored.credential.user_id == 7


def test_concurrent_deposits_leave_exactly_one_credential(make_store: StoreFactory) -> None:
    stores = [make_store() for _ in range(4)]
    errors: list[BaseException] = []

    def deposit(store: Any, n: int) -> None:
        try:
            for i in range(5):
                store.put(credential(scopes=f"{n}-{i}"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=deposit, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[0].get(7, "srv-1") is not None


def test_init_is_idempotent_and_close_allows_init_again(make_store: StoreFactory) -> None:
    store = make_store()
    store.put(credential())
    store.init()
    store.close()
    store.init()
    assert store.get(7, "srv-1") is not None


def test_using_the_sql_store_before_init_is_a_store_error(tmp_path: Path) -> None:
    store = SqlMcpCredentialStore(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with pytest.raises(CredentialStoreError):
        store.get(7, "srv-1")


def test_an_unreachable_database_fails_the_migration(caplog: pytest.LogCaptureFixture) -> None:
    store = SqlMcpCredentialStore(
        "postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2"
    )
    with pytest.raises(CredentialStoreError, match="MCP OAuth credentials migration failed"):
        store.init()
    assert "MCP OAuth credentials migration failed" in caplog.text


def test_sqlite_table_has_the_protocol_columns_and_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.sqlite3'}"
    run_store = SqlRunStore(url)
    run_store.init()
    store = SqlMcpCredentialStore(url)
    store.init()
    engine = create_engine(url)
    inspector = inspect(engine)
    columns = {c["name"]: c for c in inspector.get_columns("ai_mcp_oauth_credentials")}
    assert list(columns) == [
        "id",
        "user_id",
        "mcp_server_id",
        "refresh_token_enc",
        "client_id",
        "client_secret_enc",
        "client_secret_expires_at",
        "token_endpoint",
        "token_endpoint_auth_method",
        "scopes",
        "created_at",
        "updated_at",
    ]
    nullable = {name for name, c in columns.items() if c["nullable"]}
    assert nullable == {
        "client_id",
        "client_secret_enc",
        "client_secret_expires_at",
        "token_endpoint_auth_method",
        "scopes",
    }
    indexes = {i["name"]: i for i in inspector.get_indexes("ai_mcp_oauth_credentials")}
    assert indexes["idx_user_id_mcp_server_id"]["column_names"] == ["user_id", "mcp_server_id"]
    assert indexes["idx_user_id_mcp_server_id"]["unique"]
    # Beside the run store's table, in the same database.
    assert "workflow_step_executions" in inspector.get_table_names()
    engine.dispose()
    store.close()
    run_store.close()


@needs_postgres
@pytest.mark.postgres
def test_postgres_types_and_schema(pg_schema: str) -> None:
    assert POSTGRES_URL
    url = sqlalchemy_url(POSTGRES_URL)
    store = SqlMcpCredentialStore(url, schema=pg_schema)
    store.init()
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT column_name, data_type, character_maximum_length, is_nullable "
                "FROM information_schema.columns WHERE table_schema = :schema "
                "AND table_name = 'ai_mcp_oauth_credentials'"
            ),
            {"schema": pg_schema},
        ).all()
    engine.dispose()
    store.close()
    types = {name: (kind, length, nullable) for name, kind, length, nullable in rows}
    assert types["id"][0] == "integer"
    assert types["user_id"] == ("integer", None, "NO")
    assert types["mcp_server_id"] == ("character varying", 255, "NO")
    assert types["refresh_token_enc"] == ("bytea", None, "NO")
    assert types["client_id"] == ("character varying", 255, "YES")
    assert types["client_secret_enc"] == ("bytea", None, "YES")
    assert types["client_secret_expires_at"] == ("timestamp with time zone", None, "YES")
    assert types["token_endpoint"] == ("character varying", 2048, "NO")
    assert types["token_endpoint_auth_method"] == ("character varying", 64, "YES")
    assert types["scopes"] == ("character varying", 2048, "YES")
    assert types["created_at"][0] == "timestamp with time zone"


@needs_postgres
@pytest.mark.postgres
def test_postgres_adopts_a_table_created_by_the_reference(pg_schema: str) -> None:
    assert POSTGRES_URL
    url = sqlalchemy_url(POSTGRES_URL)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{pg_schema}"'))
        conn.execute(
            text(
                f'CREATE TABLE "{pg_schema}".ai_mcp_oauth_credentials ('
                "id SERIAL PRIMARY KEY, user_id INTEGER NOT NULL, "
                "mcp_server_id VARCHAR(255) NOT NULL, refresh_token_enc BYTEA NOT NULL, "
                "client_id VARCHAR(255), client_secret_enc BYTEA, "
                "client_secret_expires_at TIMESTAMPTZ, token_endpoint VARCHAR(2048) NOT NULL, "
                "token_endpoint_auth_method VARCHAR(64), scopes VARCHAR(2048), "
                "created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"
            )
        )
        conn.execute(
            text(
                f'CREATE UNIQUE INDEX idx_user_id_mcp_server_id ON "{pg_schema}"'
                ".ai_mcp_oauth_credentials (user_id, mcp_server_id)"
            )
        )
        conn.execute(
            text(
                f'INSERT INTO "{pg_schema}".ai_mcp_oauth_credentials (user_id, mcp_server_id, '
                "refresh_token_enc, token_endpoint, created_at, updated_at) VALUES "
                "(7, 'srv-1', '\\x0102'::bytea, 'https://a.example.com/t', now(), now())"
            )
        )
    engine.dispose()
    store = SqlMcpCredentialStore(url, schema=pg_schema)
    store.init()
    stored = store.get(7, "srv-1")
    store.close()
    assert stored is not None and stored.credential.refresh_token_enc == b"\x01\x02"

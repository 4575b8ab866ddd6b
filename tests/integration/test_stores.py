"""The run store and run leases on every backend: memory, SQLite, PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from executor.adapters.stores.memory import MemoryRunStore
from executor.adapters.stores.sql import SqlRunStore
from executor.errors import RunStoreError
from tests.postgres import POSTGRES_URL, needs_postgres, sqlalchemy_url


def guidance(step_index: int, text_value: str = "hello") -> dict[str, Any]:
    return {
        "type": "guidance",
        "stepIndex": step_index,
        "executionResult": {"userInput": text_value},
    }


StoreFactory = Callable[[], Any]


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=[needs_postgres, pytest.mark.postgres]),
    ]
)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes stores that share one database (several processes or instances would)."""
    created: list[Any] = []
    memory = MemoryRunStore()
    # Resolved here, not in make(): tests call make() from several threads at once, and pytest's
    # fixture machinery is not thread-safe.
    schema = request.getfixturevalue("pg_schema") if request.param == "postgres" else None

    def make() -> Any:
        if request.param == "memory":
            store: Any = memory
        elif request.param == "sqlite":
            store = SqlRunStore(f"sqlite:///{tmp_path / 'runs.sqlite3'}")
        else:
            store = SqlRunStore(sqlalchemy_url(POSTGRES_URL or ""), schema=schema)
        store.init()
        created.append(store)
        return store

    yield make
    for store in created:
        store.close()


def test_entries_come_back_sorted_by_step_index(store_factory: StoreFactory) -> None:
    store = store_factory()
    for index in (2, 0, 1):
        store.save_step_execution("42", guidance(index, f"input {index}"))
    store.save_step_execution("43", guidance(0, "other run"))

    entries = store.get_step_executions("42")

    assert [e["stepIndex"] for e in entries] == [0, 1, 2]
    assert entries[1] == guidance(1, "input 1")
    assert store.get_step_executions("unknown") == []


def test_save_replaces_the_entry_of_the_same_step(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.save_step_execution("42", {"type": "guidance", "stepIndex": 0, "pendingData": {}})
    store.save_step_execution("42", guidance(0, "final"))

    assert store.get_step_executions("42") == [guidance(0, "final")]
    assert store.get_step_execution("42", 0) == guidance(0, "final")
    assert store.get_step_execution("42", 1) is None


def test_delete_removes_one_entry(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.save_step_execution("42", guidance(0))
    store.save_step_execution("42", guidance(1))

    store.delete_step_execution("42", 0)
    store.delete_step_execution("42", 7)  # missing: not an error

    assert [e["stepIndex"] for e in store.get_step_executions("42")] == [1]


def test_an_invalid_document_is_refused_and_nothing_is_stored(store_factory: StoreFactory) -> None:
    store = store_factory()
    with pytest.raises(RunStoreError):
        store.save_step_execution("42", {"type": "guidance", "stepIndex": 0, "secret": "x"})
    with pytest.raises(RunStoreError):
        store.save_step_execution("42", {"type": "teleport", "stepIndex": 0})
    assert store.get_step_executions("42") == []


def test_concurrent_upserts_of_the_same_key_leave_one_entry(store_factory: StoreFactory) -> None:
    store = store_factory()
    writers = 8
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        barrier.wait()
        try:
            for round_ in range(10):
                store.save_step_execution("42", guidance(0, f"writer {n} round {round_}"))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    entries = store.get_step_executions("42")
    assert len(entries) == 1
    assert entries[0]["executionResult"]["userInput"].endswith("round 9")


def test_init_is_idempotent_and_close_then_init_works(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.save_step_execution("42", guidance(0))
    store.init()
    store.close()
    store.init()
    assert store.get_step_executions("42") == [guidance(0)]


def test_two_stores_migrating_at_once_share_one_schema(store_factory: StoreFactory) -> None:
    barrier = threading.Barrier(2)
    stores: list[Any] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            stores.append(store_factory())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stores[0].save_step_execution("42", guidance(0, "seen by both"))
    assert stores[1].get_step_executions("42") == [guidance(0, "seen by both")]


def test_leases_keep_a_run_to_one_owner_until_released(store_factory: StoreFactory) -> None:
    leases = store_factory()
    assert leases.acquire("42", "worker-a", 60)
    assert not leases.acquire("42", "worker-b", 60)
    assert leases.acquire("42", "worker-a", 60)  # re-entrant for its owner
    leases.release("42", "worker-b")  # not the holder: nothing happens
    assert not leases.acquire("42", "worker-b", 60)
    leases.release("42", "worker-a")
    assert leases.acquire("42", "worker-b", 60)


def test_an_expired_lease_can_be_taken_over(store_factory: StoreFactory) -> None:
    leases = store_factory()
    assert leases.acquire("42", "crashed-worker", -1)  # a lease whose time has already run out
    assert leases.acquire("42", "worker-b", 60)
    assert not leases.acquire("42", "crashed-worker", 60)


def test_renew_extends_only_the_owner_s_leases(store_factory: StoreFactory) -> None:
    leases = store_factory()
    assert leases.acquire("42", "worker-a", -1)  # both leases expired already...
    assert leases.acquire("43", "worker-b", -1)
    leases.renew(["42", "43"], "worker-a", 60)  # ...until their owner renews them
    assert not leases.acquire("42", "worker-c", 60)  # renewed by its owner
    assert leases.acquire("43", "worker-c", 60)  # worker-a could not renew worker-b's lease


def test_two_processes_sharing_one_sqlite_file_see_each_other(tmp_path: Path) -> None:
    first = SqlRunStore(f"sqlite:///{tmp_path / 'shared.sqlite3'}")
    second = SqlRunStore(f"sqlite:///{tmp_path / 'shared.sqlite3'}")
    first.init()
    second.init()
    try:
        assert first.acquire("42", "a", 60)
        assert not second.acquire("42", "b", 60)
        first.save_step_execution("42", guidance(0))
        assert second.get_step_executions("42") == [guidance(0)]
    finally:
        first.close()
        second.close()


def test_a_corrupt_row_is_reported_not_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SqlRunStore(f"sqlite:///{path}")
    store.init()
    store.save_step_execution("42", guidance(0))
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE workflow_step_executions SET data = :d WHERE run_id = '42'"),
            {"d": '{"type": "guidance", "stepIndex": 0, "unexpected": true}'},
        )
    engine.dispose()

    with pytest.raises(RunStoreError):
        store.get_step_executions("42")
    assert any("Stored step execution is invalid" in r.message for r in caplog.records)
    store.close()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=[needs_postgres, pytest.mark.postgres])]
)
def sql_store_and_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A SQL store and a separate engine on its database, to change rows behind its back."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'runs.sqlite3'}", None
    else:
        url, schema = sqlalchemy_url(POSTGRES_URL or ""), request.getfixturevalue("pg_schema")
    store = SqlRunStore(url, schema=schema)
    store.init()
    engine = create_engine(url)
    yield store, engine, f'"{schema}".' if schema else ""
    engine.dispose()
    store.close()


def test_a_row_changed_behind_the_store_is_checked_again(sql_store_and_engine: Any) -> None:
    store, engine, prefix = sql_store_and_engine
    store.save_step_execution("42", guidance(0))
    assert store.get_step_executions("42") == [guidance(0)]  # checked once, now known

    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE {prefix}workflow_step_executions SET data = :d WHERE run_id = '42'"),
            {"d": '{"type": "guidance", "stepIndex": 0, "unexpected": true}'},
        )
    with pytest.raises(RunStoreError, match="is invalid"):
        store.get_step_executions("42")
    with pytest.raises(RunStoreError, match="is invalid"):
        store.get_step_execution("42", 0)


def test_a_row_that_is_not_json_is_a_run_store_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SqlRunStore(f"sqlite:///{path}")
    store.init()
    store.save_step_execution("42", guidance(0))
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE workflow_step_executions SET data = '{not json'"))
    engine.dispose()

    with pytest.raises(RunStoreError, match="is not JSON"):
        store.get_step_executions("42")
    store.close()


def test_the_sqlite_folder_is_created_on_first_use(tmp_path: Path) -> None:
    store = SqlRunStore(f"sqlite:///{tmp_path / 'new' / 'instance' / 'runs.sqlite3'}")
    store.init()
    store.save_step_execution("1", guidance(0))
    store.close()
    assert (tmp_path / "new" / "instance" / "runs.sqlite3").exists()


def test_an_unreachable_database_is_a_run_store_error() -> None:
    store = SqlRunStore("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    with pytest.raises(RunStoreError, match="migration failed"):
        store.init()


def test_a_store_used_before_init_fails_clearly(tmp_path: Path) -> None:
    store = SqlRunStore(f"sqlite:///{tmp_path / 'runs.sqlite3'}")
    with pytest.raises(RunStoreError, match="before init"):
        store.get_step_executions("42")


@needs_postgres
@pytest.mark.postgres
def test_postgres_adopts_a_table_created_by_the_reference_executor(pg_schema: str) -> None:
    assert POSTGRES_URL
    engine = create_engine(sqlalchemy_url(POSTGRES_URL))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{pg_schema}"'))
        conn.execute(
            text(
                f'CREATE TABLE "{pg_schema}".workflow_step_executions ('
                " id SERIAL PRIMARY KEY, run_id VARCHAR(255) NOT NULL,"
                " step_index INTEGER NOT NULL, data JSON NOT NULL,"
                " created_at TIMESTAMP WITH TIME ZONE NOT NULL,"
                " updated_at TIMESTAMP WITH TIME ZONE NOT NULL)"
            )
        )
        conn.execute(
            text(
                f'CREATE UNIQUE INDEX idx_run_id_step_index ON "{pg_schema}"'
                ".workflow_step_executions (run_id, step_index)"
            )
        )
        conn.execute(
            text(
                f'INSERT INTO "{pg_schema}".workflow_step_executions'
                " (run_id, step_index, data, created_at, updated_at)"
                " VALUES ('42', 0, :data, now(), now())"
            ),
            {"data": json.dumps(guidance(0, "old"))},
        )
    engine.dispose()

    store = SqlRunStore(sqlalchemy_url(POSTGRES_URL), schema=pg_schema)
    store.init()
    try:
        assert store.get_step_executions("42") == [guidance(0, "old")]
        store.save_step_execution("42", guidance(0, "new"))
        assert store.get_step_executions("42") == [guidance(0, "new")]
    finally:
        store.close()


# --- readiness ping -------------------------------------------------------------------------------


def test_a_store_answers_its_readiness_ping(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.ping()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=needs_postgres)])
def test_a_closed_sql_store_fails_its_ping(backend: str, tmp_path: Path, request: Any) -> None:
    if backend == "sqlite":
        store = SqlRunStore(f"sqlite:///{tmp_path / 'runs.sqlite3'}")
    else:
        store = SqlRunStore(
            sqlalchemy_url(POSTGRES_URL or ""), schema=request.getfixturevalue("pg_schema")
        )
    store.init()
    store.ping()
    store.close()
    with pytest.raises(RunStoreError):
        store.ping()


@needs_postgres
@pytest.mark.postgres
def test_postgres_connections_are_bounded_in_time_unless_the_url_says_otherwise(
    pg_schema: str,
) -> None:
    def setting(url: str, name: str) -> str:
        store = SqlRunStore(url, schema=pg_schema)
        store.init()
        try:
            with store._transaction("read") as conn:  # the live connection's parameters
                return str(conn.connection.dbapi_connection.info.get_parameters().get(name))  # type: ignore[union-attr]
        finally:
            store.close()

    url = sqlalchemy_url(POSTGRES_URL or "")
    assert setting(url, "connect_timeout") == "10"
    assert setting(url, "keepalives_idle") == "30"
    own = f"{url}{'&' if '?' in url else '?'}connect_timeout=3"
    assert setting(own, "connect_timeout") == "3"

"""Where the sandbox agent keeps its rows: in memory (tests) or in a SQLite file (the sandbox).

A row is a mapping of column name to value, hidden foreign keys included (``company_id``); a
record id is the pipe-joined primary key (protocol §2.1).
"""

from __future__ import annotations

import copy
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from executor.sandbox.agent import Model


class Dataset(ABC):
    """The rows of every collection of the sandbox agent's datasource."""

    @abstractmethod
    def get(self, collection: str, record_id: str) -> dict[str, Any] | None:
        """A copy of one row, or None."""

    @abstractmethod
    def rows(self, collection: str) -> list[dict[str, Any]]:
        """Copies of every row of a collection, in insertion order."""

    @abstractmethod
    def put(self, collection: str, record_id: str, row: Mapping[str, Any]) -> None:
        """Add or replace a row."""

    @abstractmethod
    def update(self, collection: str, record_id: str, values: Mapping[str, Any]) -> None:
        """Change some columns of an existing row."""

    @abstractmethod
    def delete(self, collection: str, record_id: str) -> None:
        """Remove a row (no error when it does not exist)."""

    @abstractmethod
    def is_empty(self) -> bool:
        """Whether no collection holds a row (a fresh dataset, to be seeded)."""

    def close(self) -> None:  # noqa: B027 - most datasets hold nothing open
        """Release what the dataset holds open."""


class MemoryDataset(Dataset):
    def __init__(self, collections: Iterable[str]) -> None:
        self._rows: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in collections}

    def get(self, collection: str, record_id: str) -> dict[str, Any] | None:
        row = self._rows[collection].get(record_id)
        return copy.deepcopy(row) if row is not None else None

    def rows(self, collection: str) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self._rows[collection].values()))

    def put(self, collection: str, record_id: str, row: Mapping[str, Any]) -> None:
        self._rows[collection][record_id] = copy.deepcopy(dict(row))

    def update(self, collection: str, record_id: str, values: Mapping[str, Any]) -> None:
        self._rows[collection][record_id].update(copy.deepcopy(dict(values)))

    def delete(self, collection: str, record_id: str) -> None:
        self._rows[collection].pop(record_id, None)

    def is_empty(self) -> bool:
        return not any(self._rows.values())


class SqliteDataset(Dataset):
    """One table per collection, one column per field plus the hidden foreign keys, so the file
    can be opened with any SQLite tool. Booleans come back as ``bool``."""

    def __init__(self, path: Path, models: Mapping[str, Model]) -> None:
        self._models = dict(models)
        self._columns = _table_columns(self._models)
        self._booleans = {
            name: {c.name for c in model.columns if c.type == "Boolean"}
            for name, model in self._models.items()
        }
        # One connection shared by the agent's request threads, serialised by a lock: the
        # sandbox's traffic is one user's.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        with self._lock:
            for name, model in self._models.items():
                columns = ", ".join(
                    f'"{column}" {_sql_type(model, column)}' for column in self._columns[name]
                )
                keys = ", ".join(f'"{pk}"' for pk in model.primary_keys)
                self._db.execute(
                    f'CREATE TABLE IF NOT EXISTS "{name}" ({columns}, PRIMARY KEY ({keys}))'
                )

    def get(self, collection: str, record_id: str) -> dict[str, Any] | None:
        where, parameters = self._where(collection, record_id)
        if where is None:
            return None
        with self._lock:
            found = self._db.execute(
                f'SELECT {self._select(collection)} FROM "{collection}" WHERE {where}', parameters
            ).fetchone()
        return None if found is None else self._row(collection, found)

    def rows(self, collection: str) -> list[dict[str, Any]]:
        with self._lock:
            found = self._db.execute(
                f'SELECT {self._select(collection)} FROM "{collection}" ORDER BY rowid'
            ).fetchall()
        return [self._row(collection, values) for values in found]

    def put(self, collection: str, record_id: str, row: Mapping[str, Any]) -> None:
        columns = self._columns[collection]
        unknown = set(row) - set(columns)
        if unknown:
            raise ValueError(f"Unknown columns for '{collection}': {sorted(unknown)}")
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        with self._lock:
            self._db.execute(
                f'INSERT OR REPLACE INTO "{collection}" ({names}) VALUES ({marks})',
                [row.get(c) for c in columns],
            )

    def update(self, collection: str, record_id: str, values: Mapping[str, Any]) -> None:
        if not values:
            return
        unknown = set(values) - set(self._columns[collection])
        if unknown:
            raise ValueError(f"Unknown columns for '{collection}': {sorted(unknown)}")
        where, parameters = self._where(collection, record_id)
        if where is None:
            return
        assignments = ", ".join(f'"{name}" = ?' for name in values)
        with self._lock:
            self._db.execute(
                f'UPDATE "{collection}" SET {assignments} WHERE {where}',
                [*values.values(), *parameters],
            )

    def delete(self, collection: str, record_id: str) -> None:
        where, parameters = self._where(collection, record_id)
        if where is None:
            return
        with self._lock:
            self._db.execute(f'DELETE FROM "{collection}" WHERE {where}', parameters)

    def is_empty(self) -> bool:
        with self._lock:
            return not any(
                self._db.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone()
                for name in self._models
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, collection: str) -> str:
        return ", ".join(f'"{c}"' for c in self._columns[collection])

    def _where(self, collection: str, record_id: str) -> tuple[str | None, list[str]]:
        keys = self._models[collection].primary_keys
        parts = record_id.split("|")
        if len(parts) != len(keys):
            return None, []
        return " AND ".join(f'"{key}" = ?' for key in keys), parts

    def _row(self, collection: str, values: Iterable[Any]) -> dict[str, Any]:
        row = dict(zip(self._columns[collection], values, strict=True))
        for name in self._booleans[collection]:
            if row[name] is not None:
                row[name] = bool(row[name])
        return row


def _table_columns(models: Mapping[str, Model]) -> dict[str, list[str]]:
    """Each collection's fields, then the hidden keys its relations (or others') link through."""
    columns = {name: [c.name for c in model.columns] for name, model in models.items()}
    for model in models.values():
        for relation in model.relations:
            owner = model.name if relation.relation_type == "BelongsTo" else relation.target
            if owner is not None and relation.key not in columns[owner]:
                columns[owner].append(relation.key)
    return columns


def _sql_type(model: Model, column: str) -> str:
    field = model.column(column)
    if field is None or field.type == "Number":
        return "NUMERIC"  # hidden keys hold the (numeric) ids of the rows they link to
    if field.type == "Boolean":
        return "INTEGER"
    return "TEXT"

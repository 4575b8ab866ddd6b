"""PostgreSQL for the tests: the server CI provides, and a schema of each test's own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

POSTGRES_URL = os.environ.get("EXECUTOR_TEST_POSTGRES_URL")
SKIP_REASON = "EXECUTOR_TEST_POSTGRES_URL is not set (CI sets it)"
needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason=SKIP_REASON)


def sqlalchemy_url(url: str) -> str:
    """The URL with SQLAlchemy's psycopg 3 driver named."""
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def fresh_schema() -> Iterator[str]:
    """A schema name no other test uses, dropped afterwards (the test may never create it).
    Skips the test without PostgreSQL."""
    if not POSTGRES_URL:
        pytest.skip(SKIP_REASON)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    engine = create_engine(sqlalchemy_url(POSTGRES_URL))
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()

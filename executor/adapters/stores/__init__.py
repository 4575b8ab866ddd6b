"""Run stores: in memory (tests, throw-away runs) and SQL (SQLite by default, PostgreSQL)."""

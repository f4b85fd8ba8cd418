"""One small database layer under the state: the same statements and the same numbered migrations
run on SQLite (embedded, the default) and on PostgreSQL (asyncpg, chosen by `state.url`).

- `Database`: `fetch`, `execute`, `executemany`, `script` and `transaction()` (a savepoint inside
  one); rows are read by column name or position. Statements are written with `?` placeholders and
  in the SQL both dialects share; `Dialect` names the few words that differ.
- `SqliteDatabase` (aiosqlite, one connection) and `PostgresDatabase` (one asyncpg pool per server,
  shared, each community in a schema of its own: see `bot.db.postgres`).
- `migrate` applies numbered migrations written once, as templates (`render`).
"""

from __future__ import annotations

from .base import Database, DatabaseError, Dialect, Row
from .migrate import migrate, render
from .postgres import PostgresDatabase, redact_url, schema_for
from .sqlite import SqliteDatabase

__all__ = [
    "Database",
    "DatabaseError",
    "Dialect",
    "PostgresDatabase",
    "Row",
    "SqliteDatabase",
    "migrate",
    "redact_url",
    "render",
    "schema_for",
]

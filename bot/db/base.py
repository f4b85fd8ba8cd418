"""The interface both backends give: statements with `?` placeholders, rows by column name."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import asyncpg


class Row(Protocol):
    """A result row: `row["column"]`, `row[0]`, and unpacking (sqlite3.Row and asyncpg's Record)."""

    def __getitem__(self, key: Any) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


# What a statement raises when the database refuses it or cannot be reached, on either backend
# (asyncpg's DataError, a value a column will not take, is also a ValueError).
DatabaseError: tuple[type[Exception], ...] = (sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class Dialect:
    """The few words the two dialects spell differently, for the statements that need them."""

    name: Literal["sqlite", "postgres"]
    distinct: str  # a IS NOT b, NULLs compared as values
    not_distinct: str  # a IS b, NULLs compared as values

    def json_text(self, column: str, key: str) -> str:
        """The text of `key` in the JSON object held in `column` (NULL when absent or null)."""
        if self.name == "sqlite":
            return f"json_extract({column}, '$.{key}')"
        return f"(({column})::jsonb ->> '{key}')"


SQLITE = Dialect("sqlite", distinct="IS NOT", not_distinct="IS")
POSTGRES = Dialect("postgres", distinct="IS DISTINCT FROM", not_distinct="IS NOT DISTINCT FROM")


class Database(Protocol):
    """A connection (or a pool of them) to one community's tables.

    Outside a transaction each statement commits on its own. `transaction()` yields the same
    interface bound to one transaction: committed when the block ends, rolled back whole when it
    raises; a `transaction()` inside one is a savepoint (left out alone when its block raises)."""

    dialect: Dialect

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Runs one statement; returns how many rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def script(self, sql: str) -> None:
        """Several statements without parameters (a migration), in the current transaction if any."""
        ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]: ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """Where the data is, for messages: a path, or a URL without its password and the schema."""
        ...

"""`SqliteDatabase`: the embedded backend, one aiosqlite connection to one file (WAL, synchronous
FULL: a row written before it is relied on survives a power cut, not only a crash).

Transactions are explicit (the connection is in autocommit mode) and one at a time: the
connection is shared by every task of the community, and a write that fails must not leave half
its rows for another's commit. Reads outside a transaction take no lock (a local file)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from .base import SQLITE, Database, Row


class _Connection:
    """Statements on the connection, whoever holds the transaction."""

    dialect = SQLITE

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self.connection.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self.connection.execute(sql, params) as cursor:
            return int(cursor.rowcount)

    async def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.connection.executemany(sql, rows)


class _Transaction(_Connection):
    """One open transaction: its statements run on the connection; `transaction()` is a savepoint."""

    def __init__(self, connection: aiosqlite.Connection, owner: SqliteDatabase) -> None:
        super().__init__(connection)
        self._owner = owner

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._executemany(sql, rows)

    @contextlib.asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[Database]:
        self._owner.savepoints += 1
        name = f"sp_{self._owner.savepoints}"
        await self.connection.execute(f"SAVEPOINT {name}")
        try:
            yield self
        except BaseException:
            await asyncio.shield(self._undo(name))
            raise
        await self.connection.execute(f"RELEASE {name}")

    async def _undo(self, name: str) -> None:
        await self.connection.execute(f"ROLLBACK TO {name}")
        await self.connection.execute(f"RELEASE {name}")

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]:
        return self._savepoint()

    async def script(self, sql: str) -> None:
        raise RuntimeError("SQLite runs a script outside a transaction only (executescript commits first)")

    async def close(self) -> None:
        raise RuntimeError("close the database, not one of its transactions")

    def describe(self) -> str:
        return self._owner.describe()


class SqliteDatabase(_Connection):
    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        super().__init__(connection)
        self.path = path
        self._lock = asyncio.Lock()
        self.savepoints = 0

    @classmethod
    async def open(cls, path: Path, *, immediate: bool = False) -> SqliteDatabase:
        """Connects (creating the file) in WAL mode. Raises OSError or sqlite3.Error as they come;
        the connection is closed again first."""
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=FULL")
        except BaseException:
            await connection.close()  # else aiosqlite's worker thread keeps the process alive forever
            raise
        database = cls(connection, path)
        database.immediate = immediate
        return database

    immediate = False  # BEGIN IMMEDIATE: the write lock first, also against another process on the file

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._lock:  # never inside another task's open transaction
            return await self._execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def script(self, sql: str) -> None:
        """The script as written: it holds its own BEGIN and COMMIT."""
        async with self._lock:
            await self.connection.executescript(sql)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Database]:
        async with self._lock:
            await self.connection.execute("BEGIN IMMEDIATE" if self.immediate else "BEGIN")
            try:
                yield _Transaction(self.connection, self)
            except BaseException:
                await asyncio.shield(self.connection.execute("ROLLBACK"))
                raise
            await self.connection.execute("COMMIT")

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]:
        return self._transaction()

    async def close(self) -> None:
        await self.connection.close()

    def describe(self) -> str:
        return str(self.path)

    # --- SQLite's own -----------------------------------------------------------------------------
    async def checkpoint(self) -> None:
        """Folds the write-ahead log into the main file and empties it."""
        await self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def vacuum(self) -> None:
        await self.connection.execute("VACUUM")

    async def trace(self, callback: Callable[[str], object] | None) -> None:
        """Every statement run from now on is handed to `callback` (None: no more)."""
        await self.connection.set_trace_callback(callback)  # type: ignore[arg-type]  # None turns it off

"""`PostgresDatabase`: one community's tables in a PostgreSQL schema of its own, on a pool of
connections shared by every community of the process that uses the same server (`state.url`).

Why a schema per community, not a community column in every key: isolation by construction. A
community's statements run with `search_path` set to its schema and nothing else, so no statement
written for one community can read or change another's rows, whatever its WHERE clause says; the
SQL stays the same on SQLite (one file per community, the same isolation); a community's data is
dropped in one statement (`DROP SCHEMA ... CASCADE`, `destroy()`), with nothing left behind in
shared tables; and each schema carries its own migration version, so communities migrate one by one.

Round trips: a pooled connection keeps its session `search_path` between uses (the pool's reset
at release is replaced by one that keeps the session: this module never leaves advisory locks,
cursors or LISTENs on a pooled connection), and each connection remembers which schema it was set
to. A statement is then one round trip when the connection was last used for the same community,
and the SET travels with the BEGIN of a transaction when it was not.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import asyncpg

from .base import POSTGRES, Database, Row

POOL_MAX_SIZE = 10  # connections per server and process, shared by its communities
CONNECT_TIMEOUT = 10.0
SCHEMES = ("postgresql", "postgres")
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")


def is_postgres_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES if "://" in url else False


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by `***`: for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a URL that cannot be read>"
    query = "&".join(
        f"{name}=***" if name.lower() in ("password", "sslpassword") else pair
        for pair in parts.query.split("&")
        if pair
        for name in [pair.split("=", 1)[0]]
    )
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{parts.netloc.rsplit('@', 1)[1]}"
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


def check_url(url: str) -> None:
    """Raises ValueError, naming the URL without its password, when it is no PostgreSQL URL
    asyncpg could connect with."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (reading it checks it)
    except ValueError as error:
        raise ValueError(f"{shown} cannot be read as a URL ({error})") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(
            f"{shown}: expected a PostgreSQL URL (postgresql://user:password@host:5432/database) or a SQLite file path"
        )


def schema_for(name: str) -> str:
    """A schema name for a community: `community_` and its id, lowercased, with anything but
    letters, digits and `_` replaced; a short hash of the id is added whenever that changed it (two
    ids never share a schema)."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", name.lower())
    schema = f"community_{cleaned}"
    if cleaned != name or len(schema) > 63:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        schema = f"{schema[: 63 - 9]}_{digest}"
    return schema


def quote(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"{schema!r} is not a schema name this bot makes (letters, digits, _ and -; at most 63)")
    return f'"{schema}"'


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """`?` placeholders as `$1`, `$2`...; a `?` inside quotes is left as it is."""
    out: list[str] = []
    number = 0
    quoted: str | None = None
    for char in sql:
        if quoted is not None:
            if char == quoted:
                quoted = None
        elif char in "'\"":
            quoted = char
        elif char == "?":
            number += 1
            out.append(f"${number}")
            continue
        out.append(char)
    return "".join(out)


class SchemaConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg ships no types
    """A pooled connection that remembers the schema its session's search_path names."""

    schema: str | None = None

    async def use_schema(self, schema: str, then: str = "") -> None:
        """Sets the search_path to `schema` alone unless it already is, then runs `then` (a
        statement without parameters, such as BEGIN). The SET is sent on its own, outside any
        transaction: a SET inside one is undone by its ROLLBACK (an exception, a cancelled task),
        which would leave the connection on another community's schema while it says this one."""
        if self.schema != schema:
            self.schema = None  # unknown until the SET is through
            await self.execute(f"SET search_path TO {quote(schema)}")
            self.schema = schema
        if then:
            await self.execute(then)

    def forget_schema(self) -> None:
        self.schema = None


async def _keep_session(connection: Any) -> None:
    """The pool's reset at release: the session (its search_path) is kept; asyncpg has already
    rolled back any transaction left open."""


@dataclass
class _Shared:
    pool: Any
    users: int = 0


_pools: dict[tuple[str, asyncio.AbstractEventLoop], _Shared] = {}
_pools_lock: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


async def _pool(url: str) -> _Shared:
    loop = asyncio.get_running_loop()
    lock = _pools_lock.setdefault(loop, asyncio.Lock())
    async with lock:
        shared = _pools.get((url, loop))
        if shared is None:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=POOL_MAX_SIZE,
                connection_class=SchemaConnection,
                reset=_keep_session,
                timeout=CONNECT_TIMEOUT,
            )
            shared = _pools[(url, loop)] = _Shared(pool)
        shared.users += 1
        return shared


async def _release_pool(url: str) -> None:
    loop = asyncio.get_running_loop()
    shared = _pools.get((url, loop))
    if shared is None:
        return
    shared.users -= 1
    if shared.users <= 0:
        del _pools[(url, loop)]
        if not any(key[1] is loop for key in _pools):
            _pools_lock.pop(loop, None)
        await shared.pool.close()


def _count(status: str) -> int:
    """How many rows a command's status ("UPDATE 3", "INSERT 0 1") says it touched."""
    last = status.rsplit(" ", 1)[-1] if status else ""
    return int(last) if last.isdigit() else 0


class _Transaction:
    """One open transaction on one connection; `transaction()` inside it is a savepoint."""

    dialect = POSTGRES

    def __init__(self, connection: Any, owner: PostgresDatabase) -> None:
        self.connection = connection
        self._owner = owner
        self._savepoints = 0

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.connection.fetch(translate(sql), *params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return _count(str(await self.connection.execute(translate(sql), *params)))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            await self.connection.executemany(translate(sql), rows)

    async def script(self, sql: str) -> None:
        await self.connection.execute(sql)

    @contextlib.asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[Database]:
        self._savepoints += 1
        name = f"sp_{self._savepoints}"
        await self.connection.execute(f"SAVEPOINT {name}")
        try:
            yield self
        except BaseException:
            await asyncio.shield(self.connection.execute(f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"))
            raise
        await self.connection.execute(f"RELEASE SAVEPOINT {name}")

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]:
        return self._savepoint()

    async def close(self) -> None:
        raise RuntimeError("close the database, not one of its transactions")

    def describe(self) -> str:
        return self._owner.describe()


class PostgresDatabase:
    dialect = POSTGRES

    def __init__(self, shared: _Shared, url: str, schema: str) -> None:
        self._shared = shared
        self.url = url
        self.schema = schema
        self._closed = False

    @classmethod
    async def open(cls, url: str, schema: str) -> PostgresDatabase:
        """A handle on `schema` of the server at `url` (the schema is made by the migrations).
        Raises what asyncpg raises when the server cannot be reached or refuses the login."""
        quote(schema)
        return cls(await _pool(url), url, schema)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        async with self._shared.pool.acquire() as connection:
            yield connection

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._connection() as connection:
            await connection.use_schema(self.schema)
            return list(await connection.fetch(translate(sql), *params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._connection() as connection:
            await connection.use_schema(self.schema)
            return _count(str(await connection.execute(translate(sql), *params)))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def script(self, sql: str) -> None:
        async with self.transaction() as tx:
            await tx.script(sql)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Database]:
        async with self._connection() as connection:
            await connection.use_schema(self.schema, then="BEGIN")
            try:
                yield _Transaction(connection, self)
            except BaseException:
                connection.forget_schema()  # whatever happened, the next use sets it again
                await asyncio.shield(connection.execute("ROLLBACK"))
                raise
            await connection.execute("COMMIT")

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]:
        return self._transaction()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await _release_pool(self.url)

    async def destroy(self) -> None:
        """Drops the schema and everything in it, in one statement; then closes."""
        async with self._connection() as connection:
            await connection.execute(f"DROP SCHEMA IF EXISTS {quote(self.schema)} CASCADE")
        await self.close()

    def describe(self) -> str:
        return f"{redact_url(self.url)} (schema {self.schema})"

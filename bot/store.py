"""The state: which call was posted to which channel as which message, and what it shows. On
SQLite (a file per community, the default) or PostgreSQL (a schema per community), through
`bot.db`: the same statements and the same numbered migrations on both.

A post row is written *before* its message is sent (message_id NULL = "being posted"), with the
nonce the message is sent with. Discord de-duplicates messages by nonce for a few minutes
(`enforce_nonce`), so a crash between "sent" and "recorded" is repaired on restart by sending
the same batch with the same nonce again: Discord hands back the message it already created.
Only a crash followed by a restart more than those few minutes later can duplicate that batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from .db import Database, PostgresDatabase, Row, SqliteDatabase, migrate, redact_url, schema_for
from .db.base import DatabaseError
from .posts import Call, Post, PostKey, PostKind, PostState
from .sonoran.models import DispatchCall, EmergencyCall

if TYPE_CHECKING:
    from .config import StateSettings

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Post", "StateFileError", "Store", "destroy_state", "state_schema"]

# Ordered migrations: the file's `PRAGMA user_version` (PostgreSQL: the schema's `schema_migrations`)
# says how many it has had. Append only; never edit one that was released. Each runs in one
# transaction with its version bump. Templates (`bot.db.render`): {int} is a 64-bit integer,
# {real} a float, {id} an integer key the database numbers; on SQLite they read as they always did.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first release's schema (files it made are at version 0 and hold these tables already)
    """
    CREATE TABLE IF NOT EXISTS posts (
        channel_id  {int} NOT NULL,
        server_id   {int} NOT NULL,
        kind        TEXT    NOT NULL,      -- '911' or 'dispatch'
        call_id     {int} NOT NULL,
        batch       TEXT    NOT NULL,      -- nonce of the message the call is (being) posted in
        position    {int} NOT NULL,      -- index of its embed in that message
        message_id  {int},               -- NULL until Discord confirmed the message
        state       TEXT    NOT NULL,      -- active | answered | removed | closed | deleted
        data        TEXT    NOT NULL,      -- the call as last seen (JSON)
        version     TEXT    NOT NULL,      -- what the message should show
        shown       TEXT,                  -- what the message does show (NULL: nothing yet, or unknown)
        first_seen  {real}    NOT NULL,
        ended_at    {real},
        ping        {int} NOT NULL DEFAULT 0,
        PRIMARY KEY (channel_id, server_id, kind, call_id)
    );
    CREATE INDEX IF NOT EXISTS posts_batch ON posts (batch);
    CREATE INDEX IF NOT EXISTS posts_message ON posts (message_id);
    CREATE TABLE IF NOT EXISTS removals (
        server_id   {int} NOT NULL,
        call_id     {int} NOT NULL,
        removed_by  TEXT    NOT NULL,
        removed_at  {real}    NOT NULL,
        PRIMARY KEY (server_id, call_id)
    );
    """,
    # 2: who closed which dispatch call through the bot (shown on its feed post)
    """
    CREATE TABLE IF NOT EXISTS closures (
        server_id   {int} NOT NULL,
        call_id     {int} NOT NULL,
        closed_by   TEXT    NOT NULL,
        closed_at   {real}    NOT NULL,
        PRIMARY KEY (server_id, call_id)
    );
    """,
    # 3: panic alerts (one row per panic, per alert channel) and the unit boards' messages
    """
    CREATE TABLE IF NOT EXISTS alerts (
        id          {id},
        channel_id  {int} NOT NULL,
        server_id   {int} NOT NULL,
        ident_id    {int} NOT NULL,
        unit        TEXT    NOT NULL,      -- the unit as last seen (JSON)
        call        TEXT,                  -- the call it was on, as shown (NULL: none known)
        started_at  {real}    NOT NULL,
        cleared_at  {real},                  -- NULL while the panic lasts
        acked_by    TEXT,
        acked_at    {real},
        nonce       TEXT    NOT NULL,      -- of its message: a re-send after a crash is the same message
        message_id  {int},               -- NULL until Discord confirmed the message
        version     TEXT    NOT NULL,      -- what the message should show
        shown       TEXT                   -- what the message does show
    );
    CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (channel_id, server_id, ident_id)
        WHERE cleared_at IS NULL;
    CREATE TABLE IF NOT EXISTS board_pages (
        channel_id  {int} NOT NULL,
        server_id   {int} NOT NULL,
        page        {int} NOT NULL,
        nonce       TEXT    NOT NULL,
        message_id  {int},
        shown       TEXT,                  -- a hash of what the message shows
        PRIMARY KEY (channel_id, server_id, page)
    );
    """,
    # 4: a panic storm's summary alert: the units it lists (JSON); NULL on a unit's own alert
    """
    ALTER TABLE alerts ADD COLUMN members TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StateFileError(Exception):
    """The state file cannot be used; the message names `state.path` and what to do, as is."""


T = TypeVar("T")


def _explain(path: Path, error: BaseException) -> StateFileError:
    uid = os.getuid() if hasattr(os, "getuid") else "?"
    text = str(error)
    if "not a database" in text or "malformed" in text:
        return StateFileError(
            f"state.path {path} is not a usable SQLite database ({text}). Restore it from a backup, or "
            "move it aside to start with empty state (calls then showing may be posted once more)."
        )
    folder = path.parent.resolve()
    return StateFileError(
        f"state.path {path}: cannot open and write it as uid {uid} ({text}). Give that user write access "
        f"to the file and to {folder} (SQLite writes its -wal and -shm files beside it), e.g. "
        f"`chown -R {uid} {folder}`, or point state.path somewhere writable."
    )


def _make_room(path: Path, example: str) -> None:
    """The file's folder made; a folder where the file should be refused."""
    if path.is_dir():
        raise StateFileError(
            f"state.path {path} is a directory; point state.path at a file in it, e.g. {path / example}"
        )
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)


async def open_sqlite_state(
    path: Path, example: str, build: Callable[[SqliteDatabase], Awaitable[T]], *, immediate: bool = False
) -> T:
    """Opens (or creates) the SQLite file at `path` and hands it to `build` (schema checks,
    migrations, the object over it). Any failure is a StateFileError naming `state.path` and the
    fix; the connection is closed again first (else aiosqlite's worker thread keeps the process
    alive forever). `example`: a file name to suggest when `path` is a directory."""
    try:
        _make_room(path, example)
        db = await SqliteDatabase.open(path, immediate=immediate)
    except (OSError, sqlite3.Error) as error:
        raise _explain(path, error) from None
    try:
        return await build(db)
    except BaseException as error:
        await db.close()
        if isinstance(error, (OSError, sqlite3.Error)):
            raise _explain(path, error) from None
        raise


async def open_postgres_state(url: str, schema: str, build: Callable[[PostgresDatabase], Awaitable[T]]) -> T:
    """Opens `schema` on the PostgreSQL server at `url` and hands it to `build`; a server that
    cannot be reached is a StateFileError naming state.url (without its password). The pool's
    share is given back on any failure."""
    try:
        db = await PostgresDatabase.open(url, schema)
    except _UNREACHABLE as error:
        raise _explain_url(url, schema, error) from None
    try:
        return await build(db)
    except BaseException as error:
        await db.close()
        if isinstance(error, _UNREACHABLE):
            raise _explain_url(url, schema, error) from None
        raise


def _explain_url(url: str, schema: str, error: BaseException) -> StateFileError:
    return StateFileError(
        f"state.url {redact_url(url)} (schema {schema}): cannot open the state there ({type(error).__name__}: "
        f"{error}). Check that the PostgreSQL server runs and takes this user and database, or fix state.url."
    )


# what opening or migrating a PostgreSQL state raises when the server cannot be used
_UNREACHABLE: tuple[type[Exception], ...] = (OSError, TimeoutError, *DatabaseError)

_COLUMNS = (
    "channel_id, server_id, kind, call_id, batch, position, message_id, state, data, version, shown, "
    "first_seen, ended_at, ping"
)
_FIELDS = tuple(name.strip() for name in _COLUMNS.split(","))


def _post(row: Row) -> Post:
    values = {name: row[name] for name in _FIELDS}
    values["kind"] = PostKind(values["kind"])
    values["state"] = PostState(values["state"])
    data = json.loads(values.pop("data"))
    values["call"] = _call(values["kind"], data["call"], values["call_id"])
    values["ended_by"] = data.get("removed_by") or data.get("closed_by")
    values["ping"] = bool(values["ping"])
    return Post(**values)


def _call(kind: PostKind, stored: dict[str, Any], call_id: int) -> Call:
    """The stored call as its model, validated once here. A row no model accepts (written by a
    version that read the CAD differently) keeps its id only, and its card shows no more."""
    model = EmergencyCall if kind is PostKind.CALL_911 else DispatchCall
    try:
        return model.model_validate(stored)
    except (ValidationError, ValueError, TypeError):
        return model.model_construct(call_id=call_id)


class Store:
    def __init__(self, db: Database, path: Path | None = None) -> None:
        self.db = db
        self.path = path  # the SQLite file; None on PostgreSQL
        # who removed which 911 call through the bot, per server: read on every feed cycle, so kept
        # in memory (written through) rather than queried
        self._removals: dict[int, dict[int, str]] = {}
        self._closures: dict[int, dict[int, str]] = {}
        # One write at a time, each its own transaction: the feed's planner and its channel
        # writers share this store, and a write that fails must not leave half its rows for
        # another's commit. Never held across anything but the database.
        self._writing = asyncio.Lock()
        self._atomic_owner: asyncio.Task[Any] | None = None  # the task inside `atomic()`, if any
        self._atomic: Database | None = None  # its transaction

    @classmethod
    async def open(cls, path: Path | str, *, cache_kib: int | None = None) -> Store:
        """Opens (or creates) the file and brings its schema up to date. Raises StateFileError,
        naming the path and the fix, for a file that is not SQLite, from a newer version of the
        bot, or that this user cannot write; the connection is closed again first.

        `cache_kib`: the most SQLite's page cache of this connection holds (SQLite's default,
        2 MiB, when None). One process holding many communities' files caps it: each busy
        connection otherwise grows to 2 MiB (bench.communities)."""
        path = Path(path)

        async def build(db: SqliteDatabase) -> Store:
            await _refuse_hosted_registry(db, path)
            if cache_kib is not None:
                await db.execute(f"PRAGMA cache_size=-{max(1, int(cache_kib))}")
            await migrate(db, MIGRATIONS, newer=lambda found: _newer(f"state.path {path}", found))
            store = cls(db, path)
            await store._load_actions()
            return store

        return await open_sqlite_state(path, "state.sqlite3", build)

    @classmethod
    async def open_postgres(cls, url: str, schema: str) -> Store:
        """Opens the community's schema on the PostgreSQL server at `url`, creating it and bringing
        it up to date. Raises StateFileError naming state.url (without its password) and the fix."""

        async def build(db: PostgresDatabase) -> Store:
            await _refuse_hosted_registry_schema(db, url, schema)
            await migrate(
                db,
                MIGRATIONS,
                newer=lambda found: _newer(f"state.url {redact_url(url)} (schema {schema})", found),
                schema=schema,
            )
            store = cls(db)
            await store._load_actions()
            return store

        return await open_postgres_state(url, schema, build)

    @classmethod
    async def open_state(cls, state: StateSettings, community_id: str, *, cache_kib: int | None = None) -> Store:
        """The store `state` names: SQLite at state.path (`cache_kib`: see `open`), or PostgreSQL at
        state.url in the community's schema (`state_schema`)."""
        if state.postgres_url is None:
            return await cls.open(state.path, cache_kib=cache_kib)
        return await cls.open_postgres(state.postgres_url, state_schema(state, community_id))

    async def close(self) -> None:
        await self.db.close()

    async def destroy(self) -> None:
        """Deletes everything this store holds, then closes it: on PostgreSQL the community's schema
        (one DROP SCHEMA ... CASCADE); on SQLite the file and its -wal and -shm."""
        if isinstance(self.db, PostgresDatabase):
            await self.db.destroy()
            return
        await self.db.close()
        if self.path is not None and str(self.path) != ":memory:":
            _delete_sqlite(self.path)

    async def checkpoint(self) -> None:
        """Folds the write-ahead log into the main file (before a copy, or to measure the file);
        nothing on PostgreSQL."""
        if isinstance(self.db, SqliteDatabase):
            await self.db.checkpoint()

    async def vacuum(self) -> None:
        """Gives the space of deleted rows back to the file system (SQLite; PostgreSQL's autovacuum
        does it there)."""
        if isinstance(self.db, SqliteDatabase):
            await self.db.vacuum()

    def __repr__(self) -> str:
        return f"Store({self.db.describe()!r})"

    @contextlib.asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """Writes made by this task inside are one transaction, one commit (one fsync): a burst's
        posts in every channel. Each write inside stays all or nothing on its own (a savepoint), so
        one that fails can be left out and the others kept. Other tasks' writes wait."""
        async with self._writing, self.db.transaction() as tx:
            self._atomic_owner, self._atomic = asyncio.current_task(), tx
            try:
                yield
            finally:
                self._atomic_owner, self._atomic = None, None

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[Database]:
        """One write: its own transaction, or inside `atomic()` a savepoint; committed (released)
        at the end, rolled back whole when it fails. Committed before it returns."""
        if self._atomic is not None and self._atomic_owner is asyncio.current_task():
            async with self._atomic.transaction() as savepoint:
                yield savepoint
            return
        async with self._writing, self.db.transaction() as tx:
            yield tx

    def writing(self) -> contextlib.AbstractAsyncContextManager[Database]:
        """One write for another room's tables (the units'), with the same rules as the posts':
        its own transaction, or a savepoint inside `atomic()`."""
        return self._write()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._reader().fetch(sql, params)

    def _reader(self) -> Database:
        """Where a read goes: inside `atomic()`, its task reads its own transaction (its writes not
        yet committed, as on SQLite's one connection); elsewhere the database."""
        if self._atomic is not None and self._atomic_owner is asyncio.current_task():
            return self._atomic
        return self.db

    # --- posts -----------------------------------------------------------------------------------

    async def open_posts(self, channel_id: int, server_id: int) -> dict[PostKey, Post]:
        """Posts that still need work: calls still active, batches not yet sent, edits not yet shown.
        Ended posts that Discord already shows are final and stay on disk only."""
        rows = await self._reader().fetch(
            f"SELECT {_COLUMNS} FROM posts WHERE channel_id = ? AND server_id = ? "
            f"AND (state = 'active' OR message_id IS NULL OR shown {self.db.dialect.distinct} version)",
            (channel_id, server_id),
        )
        return {post.key: post for post in map(_post, rows)}

    async def known_keys(self, channel_id: int, server_id: int) -> set[PostKey]:
        """Every call ever posted (or being posted) to this channel, from this server."""
        rows = await self._reader().fetch(
            "SELECT kind, call_id FROM posts WHERE channel_id = ? AND server_id = ?", (channel_id, server_id)
        )
        return {(PostKind(kind), call_id) for kind, call_id in rows}

    async def unanswered_removals(self, channel_id: int, server_id: int) -> set[int]:
        """911 calls this channel shows "removed" that nobody removed through the bot."""
        rows = await self._reader().fetch(
            "SELECT call_id FROM posts WHERE channel_id = ? AND server_id = ? AND kind = '911' AND state = 'removed' "
            f"AND {self.db.dialect.json_text('data', 'removed_by')} IS NULL",
            (channel_id, server_id),
        )
        return {int(row[0]) for row in rows}

    async def posts(self, channel_id: int, server_id: int, keys: Iterable[PostKey]) -> dict[PostKey, Post]:
        """The rows of these (kind, call id) pairs, whatever their state."""
        found: dict[PostKey, Post] = {}
        for kind, call_id in keys:
            rows = await self._reader().fetch(
                f"SELECT {_COLUMNS} FROM posts WHERE channel_id = ? AND server_id = ? AND kind = ? AND call_id = ?",
                (channel_id, server_id, kind, call_id),
            )
            if rows:
                post = _post(rows[0])
                found[post.key] = post
        return found

    async def batch(self, batch: str) -> list[Post]:
        rows = await self._reader().fetch(f"SELECT {_COLUMNS} FROM posts WHERE batch = ? ORDER BY position", (batch,))
        return [_post(row) for row in rows]

    async def add_batch(self, posts: Sequence[Post]) -> None:
        """Records calls about to be posted (message_id NULL), committed before anything is sent."""
        if not posts:
            return  # no empty commit: each one is an fsync
        async with self._write() as db:
            await db.executemany(
                f"INSERT INTO posts ({_COLUMNS}) VALUES ({', '.join('?' * 14)}) ON CONFLICT DO NOTHING",
                [
                    (
                        p.channel_id,
                        p.server_id,
                        p.kind,
                        p.call_id,
                        p.batch,
                        p.position,
                        p.message_id,
                        p.state,
                        json.dumps(p.data, sort_keys=True),
                        p.version,
                        p.shown,
                        p.first_seen,
                        p.ended_at,
                        int(p.ping),
                    )
                    for p in posts
                ],
            )

    async def mark_sent(self, batch: str, message_id: int, shown: dict[PostKey, str | None]) -> None:
        """The batch's message exists; `shown` is what it shows of each call (None: not the current
        version, so the feed edits it)."""
        async with self._write() as db:
            await db.executemany(
                "UPDATE posts SET message_id = ?, shown = ? WHERE batch = ? AND kind = ? AND call_id = ?",
                [(message_id, version, batch, kind, call_id) for (kind, call_id), version in shown.items()],
            )

    async def rebatch(self, posts: Sequence[Post]) -> None:
        """Moves unsent posts to the batch (and positions) they now carry: a refused batch, split."""
        async with self._write() as db:
            await db.executemany(
                "UPDATE posts SET batch = ?, position = ? WHERE channel_id = ? AND server_id = ? AND kind = ? "
                "AND call_id = ? AND message_id IS NULL",
                [(p.batch, p.position, p.channel_id, p.server_id, p.kind, p.call_id) for p in posts],
            )

    async def update(self, posts: Sequence[Post]) -> None:
        """Stores what calls now look like; their messages are edited from these rows."""
        if not posts:
            return
        async with self._write() as db:
            await db.executemany(
                "UPDATE posts SET state = ?, data = ?, version = ?, ended_at = ? "
                "WHERE channel_id = ? AND server_id = ? AND kind = ? AND call_id = ?",
                [
                    (
                        p.state,
                        json.dumps(p.data, sort_keys=True),
                        p.version,
                        p.ended_at,
                        p.channel_id,
                        p.server_id,
                        p.kind,
                        p.call_id,
                    )
                    for p in posts
                ],
            )

    async def mark_shown(self, batch: str, versions: dict[PostKey, str]) -> None:
        async with self._write() as db:
            await db.executemany(
                "UPDATE posts SET shown = ? WHERE batch = ? AND kind = ? AND call_id = ?",
                [(version, batch, kind, call_id) for (kind, call_id), version in versions.items()],
            )

    async def mark_deleted(self, batch: str) -> None:
        """Someone deleted the message: stop editing it, and never post those calls again."""
        async with self._write() as db:
            await db.execute("UPDATE posts SET state = 'deleted', shown = version WHERE batch = ?", (batch,))

    async def forget_ended(self, older_than: float) -> int:
        """Drops rows of calls that ended long ago, so the file does not grow forever."""
        async with self._write() as db:
            dropped = await db.execute(
                "DELETE FROM posts WHERE ended_at IS NOT NULL AND ended_at < ? AND shown = version", (older_than,)
            )
            await db.execute("DELETE FROM removals WHERE removed_at < ?", (older_than,))
            await db.execute("DELETE FROM closures WHERE closed_at < ?", (older_than,))
        await self._load_actions()
        return dropped

    # --- removals (who used /remove911) ----------------------------------------------------------

    async def record_removal(self, server_id: int, call_id: int, removed_by: str) -> None:
        await self._record("removals", "removed", self._removals, server_id, call_id, removed_by)

    def removals(self, server_id: int) -> Mapping[int, str]:
        """Who removed which 911 call of this server through the bot (from memory)."""
        return self._removals.get(server_id, {})

    async def record_closure(self, server_id: int, call_id: int, closed_by: str) -> None:
        await self._record("closures", "closed", self._closures, server_id, call_id, closed_by)

    def closures(self, server_id: int) -> Mapping[int, str]:
        """Who closed which dispatch call of this server through the bot (from memory)."""
        return self._closures.get(server_id, {})

    async def _record(
        self, table: str, verb: str, into: dict[int, dict[int, str]], server_id: int, call_id: int, who: str
    ) -> None:
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO {table} VALUES (?, ?, ?, ?) ON CONFLICT (server_id, call_id) "
                f"DO UPDATE SET {verb}_by = excluded.{verb}_by, {verb}_at = excluded.{verb}_at",
                (server_id, call_id, who, time.time()),
            )
        into.setdefault(server_id, {})[call_id] = who

    async def _load_actions(self) -> None:
        self._removals, self._closures = {}, {}
        for table, column, into in (
            ("removals", "removed_by", self._removals),
            ("closures", "closed_by", self._closures),
        ):
            rows = await self._reader().fetch(f"SELECT server_id, call_id, {column} FROM {table}")
            for server_id, call_id, who in rows:
                into.setdefault(server_id, {})[call_id] = str(who)


def _newer(where: str, found: int) -> StateFileError:
    return StateFileError(
        f"{where} was written by a newer version of the bot (schema {found}; this version "
        f"knows up to {SCHEMA_VERSION}). Upgrade the bot, or restore a backup made with this version."
    )


async def _refuse_hosted_registry(db: SqliteDatabase, path: Path) -> None:
    if await db.fetch("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tenants'"):
        # its user_version counts the hosted registry's migrations, not these
        raise StateFileError(
            f"state.path {path} is a hosted deployment's state file (its communities and their sealed keys), and "
            "hosting.enabled is false: point state.path at a file of its own for this community, or turn hosting on"
        )


async def _refuse_hosted_registry_schema(db: Database, url: str, schema: str) -> None:
    rows = await db.fetch(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = 'tenants'", (schema,)
    )
    if rows:
        raise StateFileError(
            f"state.url {redact_url(url)} (schema {schema}) is a hosted deployment's registry (its communities and "
            "their sealed keys), and hosting.enabled is false: set state.schema_name to a schema of its own for this "
            "community, or turn hosting on"
        )


def state_schema(state: StateSettings, community_id: str) -> str:
    """The PostgreSQL schema of a community: `state.schema_name`, else one named from its id."""
    return state.schema_name or schema_for(community_id)


def _delete_sqlite(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


async def destroy_state(state: StateSettings, community_id: str) -> None:
    """Deletes a community's state that is not open: its schema on PostgreSQL (one statement), its
    file on SQLite. Nothing there is no error."""
    if state.postgres_url is None:
        _delete_sqlite(state.path)
        return
    schema = state_schema(state, community_id)
    try:
        db = await PostgresDatabase.open(state.postgres_url, schema)
    except _UNREACHABLE as error:
        raise _explain_url(state.postgres_url, schema, error) from None
    await db.destroy()

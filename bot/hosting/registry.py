"""The hosted deployment's own state: its communities (tenants), the guilds linked to them, and the
/setup changes made in each guild. Through `bot.db`, as `bot.store`: one SQLite file at `state.path`
(WAL; `PRAGMA user_version` counts its migrations), or with `state.url` a PostgreSQL schema of its
own (`hosting`, or `state.schema_name`; `schema_migrations` counts them). The same numbered
`MIGRATIONS` and the same statements on both.

API keys and push tokens are stored sealed (`SecretBox`), each bound to its tenant's id; beside the
key, its keyed fingerprint (to show it, and to find it set up twice); beside the push token, its
sha256 (unique). On SQLite, deleted rows are overwritten (`secure_delete`), and the write-ahead log
is folded and emptied after a deletion or a rotation, so a removed community's sealed key survives
nowhere in the file (PostgreSQL's own files are its operator's: VACUUM and its WAL archive).

Every write is one transaction, committed before the call returns, and one writer at a time also
against another process (such as `keys rotate` beside the running bot, or a second bot on the same
server): SQLite's BEGIN IMMEDIATE; on PostgreSQL an advisory lock taken first in the transaction
(`_WRITER`), so that a read-then-write such as `link` is whole: two processes linking the same
community at once make it once, the second one finding the first one's row.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

from ..community import push_digest
from ..db import Database, PostgresDatabase, Row, SqliteDatabase, migrate, redact_url
from ..store import StateFileError, open_postgres_state, open_sqlite_state
from .errors import KeyInUse, KeyMismatch
from .models import Change, CommunityOptions, GuildConfig, LinkedGuild, Tenant
from .secrets import MasterKeyError, SecretBox

if TYPE_CHECKING:
    from ..config import StateSettings

__all__ = ["MIGRATIONS", "REGISTRY_SCHEMA", "SCHEMA_VERSION", "KeyInUse", "Registry", "push_digest", "registry_schema"]

# on PostgreSQL, unless state.schema_name names another (each community: `plan.community_schema`)
REGISTRY_SCHEMA = "hosting"

# Append only; never edit one that was released. Each runs in one transaction with its version bump.
# Templates (`bot.db.render`): on SQLite they read exactly as the first release's statements did.
MIGRATIONS: tuple[str, ...] = (
    # 1: communities, linked guilds, /setup changes
    """
    CREATE TABLE tenants (
        id               TEXT    PRIMARY KEY,   -- the bot's own random id; the owner sealed in each secret
        community_id     TEXT    NOT NULL,
        api_url          TEXT    NOT NULL,
        key_cipher       {blob}  NOT NULL,      -- SecretBox.seal(id, api key)
        key_fingerprint  TEXT    NOT NULL,      -- SecretBox.fingerprint(api key)
        push_cipher      {blob}  NOT NULL,      -- SecretBox.seal(id, push token)
        push_digest      {blob}  NOT NULL UNIQUE,  -- sha256(push token)
        options          TEXT    NOT NULL,      -- CommunityOptions (JSON)
        created_at       {real}  NOT NULL,
        UNIQUE (api_url, community_id)
    );
    CREATE INDEX tenants_fingerprint ON tenants (key_fingerprint);
    CREATE TABLE guilds (
        guild_id   {int} PRIMARY KEY,
        tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        config     TEXT    NOT NULL,            -- GuildConfig (JSON)
        linked_at  {real}    NOT NULL
    );
    CREATE INDEX guilds_tenant ON guilds (tenant_id);
    CREATE TABLE changes (
        id           {id},
        guild_id     {int} NOT NULL,
        member_id    {int} NOT NULL,
        member_name  TEXT    NOT NULL,
        what         TEXT    NOT NULL,          -- never a key
        at           {real}    NOT NULL
    );
    CREATE INDEX changes_guild ON changes (guild_id, id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
CHANGES_KEPT = 500  # per guild: the newest; /setup shows the last few


_TENANT_COLUMNS = "id, community_id, api_url, key_cipher, key_fingerprint, push_cipher, options, created_at"


# the one-writer lock of a registry on PostgreSQL: per server and schema (two deployments on one
# server, each in a schema of its own, do not wait on each other)
_WRITER = "hosted registry writer {schema}"


def registry_schema(state: StateSettings) -> str:
    """The PostgreSQL schema of the hosted registry: `state.schema_name`, else `hosting`."""
    return state.schema_name or REGISTRY_SCHEMA


class Registry:
    def __init__(self, db: Database, path: Path | None, box: SecretBox, *, schema: str | None = None) -> None:
        self._db = db
        self.path = path  # the SQLite file; None on PostgreSQL
        self.schema = schema  # the PostgreSQL schema; None on SQLite
        self._box = box
        # one call at a time through this object (reads too: on SQLite's one connection, a read
        # inside another call's open transaction would see half a write)
        self._lock = asyncio.Lock()

    @classmethod
    async def open_state(cls, state: StateSettings, box: SecretBox) -> Registry:
        """The registry `state` names: SQLite at state.path, or PostgreSQL at state.url in its own
        schema (`registry_schema`)."""
        if state.postgres_url is None:
            return await cls.open(state.path, box)
        return await cls.open_postgres(state.postgres_url, registry_schema(state), box)

    @classmethod
    async def open(cls, path: Path, box: SecretBox) -> Registry:
        """Opens (or creates) the file and brings its schema up to date. Raises StateFileError for a
        file that is not SQLite, a single-community state file, one from a newer version of the bot,
        or one this user cannot write; the connection is closed again first."""
        path = Path(path)

        async def build(db: SqliteDatabase) -> Registry:
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA secure_delete=ON")  # a deleted row's sealed key is overwritten
            await _refuse_single_community_file(db, path)
            await migrate(db, MIGRATIONS, newer=lambda found: _newer(f"state.path {path}", found))
            return cls(db, path, box)

        # the write lock first: read-then-write is whole
        return await open_sqlite_state(path, "hosted.sqlite3", build, immediate=True)

    @classmethod
    async def open_postgres(cls, url: str, schema: str, box: SecretBox) -> Registry:
        """Opens the registry's schema on the PostgreSQL server at `url`, creating it and bringing it
        up to date. Raises StateFileError naming state.url (without its password) and the fix, for a
        server that cannot be used, a single community's schema, or one from a newer version."""
        where = f"state.url {redact_url(url)} (schema {schema})"

        async def build(db: PostgresDatabase) -> Registry:
            await _refuse_single_community_schema(db, schema, where)
            await migrate(db, MIGRATIONS, newer=lambda found: _newer(where, found), schema=schema)
            return cls(db, None, box, schema=schema)

        return await open_postgres_state(url, schema, build)

    async def close(self) -> None:
        await self._db.close()

    def describe(self) -> str:
        """Where the registry is, for messages: the path, or the URL without its password and the schema."""
        return self._db.describe()

    def __repr__(self) -> str:
        return f"Registry({self._db.describe()!r})"

    # --- reading ---------------------------------------------------------------------------------

    async def tenants(self) -> list[Tenant]:
        """Every community, its secrets opened; MasterKeyError (naming the community) if one fails."""
        rows = await self._fetch(f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY created_at, id")
        return [self._tenant(row) for row in rows]

    async def tenant(self, tenant_id: str) -> Tenant | None:
        rows = await self._fetch(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = ?", (tenant_id,))
        return self._tenant(rows[0]) if rows else None

    async def tenant_by_community(self, api_url: str, community_id: str) -> Tenant | None:
        rows = await self._fetch(
            f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE api_url = ? AND community_id = ?", (api_url, community_id)
        )
        return self._tenant(rows[0]) if rows else None

    async def tenant_by_fingerprint(self, api_key: str) -> Tenant | None:
        """The community this API key is set up for (its fingerprint under any master key, and the
        key itself, match), or None."""
        async with self._lock:
            found = await self._holders(self._db, api_key)
        return found[0] if found else None

    async def count_tenants(self) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM tenants")
        return int(rows[0][0])

    async def guilds(self) -> list[LinkedGuild]:
        rows = await self._fetch("SELECT guild_id, tenant_id, config FROM guilds ORDER BY guild_id")
        return [_linked(row) for row in rows]

    async def guild(self, guild_id: int) -> LinkedGuild | None:
        rows = await self._fetch("SELECT guild_id, tenant_id, config FROM guilds WHERE guild_id = ?", (guild_id,))
        return _linked(rows[0]) if rows else None

    async def guilds_of(self, tenant_id: str) -> dict[int, GuildConfig]:
        rows = await self._fetch(
            "SELECT guild_id, tenant_id, config FROM guilds WHERE tenant_id = ? ORDER BY guild_id", (tenant_id,)
        )
        return {linked.guild_id: linked.config for linked in map(_linked, rows)}

    async def signatures(self) -> dict[str, bytes]:
        """Each community's digest of everything a process builds it from (its key's fingerprint,
        its push token's digest, its options, its guilds and their setups): one query, no secret
        opened. A process sharing the registry compares them to see what another changed."""
        rows = await self._fetch(
            "SELECT t.id, t.key_fingerprint, t.push_digest, t.options, g.guild_id, g.config "
            "FROM tenants t LEFT JOIN guilds g ON g.tenant_id = t.id ORDER BY t.id, g.guild_id"
        )
        digests: dict[str, Any] = {}
        for row in rows:
            digest = digests.get(row[0])
            if digest is None:
                digest = digests[row[0]] = hashlib.sha256()
                digest.update(f"{row[1]}\0".encode() + bytes(row[2]) + f"\0{row[3]}".encode())
            if row[4] is not None:
                digest.update(f"\0{row[4]}\0{row[5]}".encode())
        return {tenant_id: digest.digest() for tenant_id, digest in digests.items()}

    async def guild_ids_of(self, tenant_id: str) -> list[int]:
        rows = await self._fetch("SELECT guild_id FROM guilds WHERE tenant_id = ? ORDER BY guild_id", (tenant_id,))
        return [int(row[0]) for row in rows]

    async def changes(self, guild_id: int, limit: int = 10) -> list[Change]:
        """The guild's newest /setup changes, newest first."""
        rows = await self._fetch(
            "SELECT guild_id, member_id, member_name, what, at FROM changes WHERE guild_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (guild_id, limit),
        )
        return [Change(int(r[0]), int(r[1]), str(r[2]), str(r[3]), float(r[4])) for r in rows]

    # --- writing ---------------------------------------------------------------------------------

    async def link(self, guild_id: int, *, community_id: str, api_url: str, api_key: str) -> tuple[Tenant, bool]:
        """Links the guild to the community (api_url, community_id) with this key, in one
        transaction: the community is made (new id, new push token, default options) when it is
        new, or takes the key when it exists. The guild keeps its config when it was linked to this
        community already, and starts empty when it comes from another; a community it leaves with
        no guild left is deleted with it (its credentials do not outlive its last guild: the caller
        stops its work). Returns (the community, whether it was made). KeyInUse when another
        community, linked to another guild, holds this key."""
        created = False
        async with self._write() as db:
            rows = await _rows(
                db,
                f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE api_url = ? AND community_id = ?",
                (api_url, community_id),
            )
            tenant_id = str(rows[0]["id"]) if rows else None
            for holder in await self._holders(db, api_key):
                if holder.id == tenant_id:
                    continue
                others = await _rows(
                    db, "SELECT 1 FROM guilds WHERE tenant_id = ? AND guild_id != ? LIMIT 1", (holder.id, guild_id)
                )
                if others:
                    raise KeyInUse(holder.community_id)
            fingerprint = self._box.fingerprint(api_key)
            if tenant_id is None:
                tenant_id, created = secrets.token_urlsafe(12), True
                token = secrets.token_urlsafe(32)
                await db.execute(
                    "INSERT INTO tenants (id, community_id, api_url, key_cipher, key_fingerprint, push_cipher, "
                    "push_digest, options, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        tenant_id,
                        community_id,
                        api_url,
                        self._box.seal(tenant_id, api_key),
                        fingerprint,
                        self._box.seal(tenant_id, token),
                        push_digest(token),
                        CommunityOptions().model_dump_json(),
                        time.time(),
                    ),
                )
            linked = await _rows(db, "SELECT tenant_id FROM guilds WHERE guild_id = ?", (guild_id,))
            previous = str(linked[0][0]) if linked else None
            if not created:
                # v2 names the community by its key alone, so the Community ID typed in the form is
                # not proof: only a guild already linked to the community may replace its key; any
                # other must bring the key it runs on (else one server could take another's over)
                stored = str(rows[0]["key_fingerprint"])
                if stored not in self._box.fingerprints(api_key) and previous != tenant_id:
                    raise KeyMismatch(community_id)
                await db.execute(
                    "UPDATE tenants SET key_cipher = ?, key_fingerprint = ? WHERE id = ?",
                    (self._box.seal(tenant_id, api_key), fingerprint, tenant_id),
                )
            if previous != tenant_id:
                await db.execute(
                    "INSERT INTO guilds (guild_id, tenant_id, config, linked_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (guild_id) DO UPDATE SET tenant_id = excluded.tenant_id, config = excluded.config, "
                    "linked_at = excluded.linked_at",
                    (guild_id, tenant_id, GuildConfig().model_dump_json(), time.time()),
                )
            if previous is not None and previous != tenant_id:
                await db.execute(
                    "DELETE FROM tenants WHERE id = ? AND NOT EXISTS (SELECT 1 FROM guilds WHERE tenant_id = ?)",
                    (previous, previous),
                )
            (row,) = await _rows(db, f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = ?", (tenant_id,))
            tenant = self._tenant(row)
        await self._fold_log()
        return tenant, created

    async def save_config(self, guild_id: int, config: GuildConfig) -> None:
        async with self._write() as db:
            changed = await db.execute(
                "UPDATE guilds SET config = ? WHERE guild_id = ?", (config.model_dump_json(), guild_id)
            )
            if changed == 0:
                raise LookupError(f"guild {guild_id} is not linked to a community")

    async def save_options(self, tenant_id: str, options: CommunityOptions) -> None:
        async with self._write() as db:
            changed = await db.execute(
                "UPDATE tenants SET options = ? WHERE id = ?", (options.model_dump_json(), tenant_id)
            )
            if changed == 0:
                raise LookupError(f"no community {tenant_id}")

    async def unlink(self, guild_id: int) -> str | None:
        """Unlinks the guild (and forgets its /setup changes); the community it was linked to, if
        any, stays (the caller deletes it when this was its last guild)."""
        async with self._write() as db:
            rows = await _rows(db, "SELECT tenant_id FROM guilds WHERE guild_id = ?", (guild_id,))
            await db.execute("DELETE FROM guilds WHERE guild_id = ?", (guild_id,))
            await db.execute("DELETE FROM changes WHERE guild_id = ?", (guild_id,))
        return str(rows[0][0]) if rows else None

    async def delete_tenant(self, tenant_id: str) -> None:
        """Deletes the community, its sealed key and push token, its guilds' links and changes; the
        deleted bytes are overwritten and the write-ahead log emptied."""
        async with self._write() as db:
            await db.execute(
                "DELETE FROM changes WHERE guild_id IN (SELECT guild_id FROM guilds WHERE tenant_id = ?)", (tenant_id,)
            )
            await db.execute("DELETE FROM guilds WHERE tenant_id = ?", (tenant_id,))
            await db.execute("DELETE FROM tenants WHERE id = ?", (tenant_id,))
        await self._fold_log()

    async def rotate_push_token(self, tenant_id: str) -> Tenant:
        """A new push token (the old URL stops working); LookupError for an unknown community."""
        token = secrets.token_urlsafe(32)
        async with self._write() as db:
            changed = await db.execute(
                "UPDATE tenants SET push_cipher = ?, push_digest = ? WHERE id = ?",
                (self._box.seal(tenant_id, token), push_digest(token), tenant_id),
            )
            if changed == 0:
                raise LookupError(f"no community {tenant_id}")
            (row,) = await _rows(db, f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = ?", (tenant_id,))
            tenant = self._tenant(row)
        await self._fold_log()
        return tenant

    async def record_change(self, guild_id: int, member_id: int, member_name: str, what: str) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO changes (guild_id, member_id, member_name, what, at) VALUES (?, ?, ?, ?, ?)",
                (guild_id, member_id, member_name, what, time.time()),
            )
            await db.execute(
                "DELETE FROM changes WHERE guild_id = ? AND id NOT IN "
                "(SELECT id FROM changes WHERE guild_id = ? ORDER BY id DESC LIMIT ?)",
                (guild_id, guild_id, CHANGES_KEPT),
            )

    async def rotate_keys(self) -> int:
        """Re-encrypts every API key and push token under the newest master key and recomputes the
        fingerprints, in one transaction (all or none); returns how many communities."""
        async with self._write() as db:
            rows = await _rows(db, f"SELECT {_TENANT_COLUMNS} FROM tenants")
            for row in rows:
                tenant_id = str(row["id"])
                try:
                    key_cipher = self._box.rotate(row["key_cipher"])
                    push_cipher = self._box.rotate(row["push_cipher"])
                    api_key = self._box.open(tenant_id, key_cipher)  # still bound to its own row
                    self._box.open(tenant_id, push_cipher)
                except MasterKeyError as error:
                    raise _naming(error, row) from None
                await db.execute(
                    "UPDATE tenants SET key_cipher = ?, push_cipher = ?, key_fingerprint = ? WHERE id = ?",
                    (key_cipher, push_cipher, self._box.fingerprint(api_key), tenant_id),
                )
        await self._fold_log()
        return len(rows)

    # --- inside ----------------------------------------------------------------------------------

    def _tenant(self, row: Row) -> Tenant:
        tenant_id = str(row["id"])
        try:
            api_key = self._box.open(tenant_id, row["key_cipher"])
            push_token = self._box.open(tenant_id, row["push_cipher"])
        except MasterKeyError as error:
            raise _naming(error, row) from None
        try:
            options = CommunityOptions.model_validate_json(row["options"])
        except ValidationError:
            options = CommunityOptions()  # written by a version that knew other numbers: the defaults
        return Tenant(
            id=tenant_id,
            community_id=str(row["community_id"]),
            api_url=str(row["api_url"]),
            api_key=SecretStr(api_key),
            fingerprint=str(row["key_fingerprint"]),
            push_token=SecretStr(push_token),
            options=options,
            created_at=float(row["created_at"]),
        )

    async def _holders(self, db: Database, api_key: str) -> list[Tenant]:
        """The communities holding this key: its fingerprint under any master key, then the key itself
        (a fingerprint is short; the key decides)."""
        prints = sorted(self._box.fingerprints(api_key))
        rows = await _rows(
            db,
            f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE key_fingerprint IN ({', '.join('?' * len(prints))})",
            prints,
        )
        holders = [self._tenant(row) for row in rows]
        return [t for t in holders if hmac.compare_digest(t.api_key.get_secret_value().encode(), api_key.encode())]

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._lock:
            return await self._db.fetch(sql, params)

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[Database]:
        """One write transaction, committed at the end; the only writer of the registry meanwhile,
        also against other processes (see the module's docstring)."""
        async with self._lock, self._db.transaction() as tx:
            if self.schema is not None:
                # READ COMMITTED whatever the server's default: each statement after the lock sees
                # what the writer before committed
                await tx.script(
                    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; "
                    f"SELECT pg_advisory_xact_lock(hashtext('{_WRITER.format(schema=self.schema)}'))"
                )
            yield tx

    async def _fold_log(self) -> None:
        """SQLite: folds the write-ahead log into the file and empties it: after a deletion or a
        rotation, the replaced sealed values are left nowhere. Best effort: a reader elsewhere may
        hold it."""
        if not isinstance(self._db, SqliteDatabase):
            return
        async with self._lock:
            with contextlib.suppress(sqlite3.Error):
                await self._db.checkpoint()


def _naming(error: MasterKeyError, row: Row) -> MasterKeyError:
    """The same error, naming the Sonoran community as well as the bot's id of it."""
    return type(error)(f"{error} (Sonoran community {row['community_id']}, at {row['api_url']})")


def _linked(row: Row) -> LinkedGuild:
    guild_id = int(row["guild_id"])
    try:
        config = GuildConfig.model_validate_json(row["config"])
    except ValidationError as error:
        raise StateFileError(
            f"the stored configuration of guild {guild_id} is not one this version reads "
            f"({error.error_count()} problem(s)); run the version that wrote it, or set the guild up again"
        ) from None
    return LinkedGuild(guild_id=guild_id, tenant_id=str(row["tenant_id"]), config=config)


async def _rows(db: Database, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    return await db.fetch(sql, params)


def _newer(where: str, found: int) -> StateFileError:
    return StateFileError(
        f"{where} was written by a newer version of the bot (hosted schema {found}; this version knows up to "
        f"{SCHEMA_VERSION}). Upgrade the bot, or restore a backup made with this version."
    )


_SINGLE_COMMUNITY = (
    "a single-community (TOML mode) state {what}, and hosting.enabled is true: a hosted deployment keeps its "
    "communities in {own}. Point {setting} at a new one, or turn hosting off to use this one"
)


async def _refuse_single_community_file(db: SqliteDatabase, path: Path) -> None:
    if await db.fetch("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'posts'"):
        what = _SINGLE_COMMUNITY.format(what="file", own="a file of its own", setting="state.path")
        raise StateFileError(f"state.path {path} is {what}")


async def _refuse_single_community_schema(db: Database, schema: str, where: str) -> None:
    rows = await db.fetch(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = 'posts'", (schema,)
    )
    if rows:
        what = _SINGLE_COMMUNITY.format(what="schema", own="a schema of its own", setting="state.schema_name")
        raise StateFileError(f"{where} is {what}")

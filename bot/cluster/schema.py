"""The cluster's own tables, in a PostgreSQL schema of their own (`cluster`), beside the
communities' schemas on the same server: who owns which community (`leases`), which processes
are alive (`members`), and the Sonoran budgets all of them spend (`budgets`). Made at open by a
numbered migration (`bot.db.migrate`)."""

from __future__ import annotations

from bot.db import PostgresDatabase, migrate

SCHEMA = "cluster"

# Every time in these tables is the database's clock (seconds since the epoch), never a process's.
NOW = "extract(epoch from clock_timestamp())::double precision"

MIGRATIONS = [
    """
    CREATE TABLE leases (
        community TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        fence BIGINT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX leases_owner ON leases (owner);
    CREATE TABLE members (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        shard_ids TEXT NOT NULL,
        shard_count INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        heartbeat_at DOUBLE PRECISION NOT NULL
    )
    """,
    # one row per budget key (a tenant) and operation: the times of the requests sent in the last
    # window, and the time a 429 said to wait until (bot/cluster/budget.py)
    """
    CREATE TABLE budgets (
        budget_key TEXT NOT NULL,
        operation TEXT NOT NULL,
        stamps DOUBLE PRECISION[] NOT NULL DEFAULT '{{}}',
        blocked_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (budget_key, operation)
    )
    """,
]


class NewerClusterSchema(Exception):
    def __init__(self, found: int) -> None:
        super().__init__(
            f"the cluster tables are at migration {found}, newer than this bot's {len(MIGRATIONS)}: "
            "upgrade this process"
        )


async def open_cluster(url: str, schema: str = SCHEMA) -> PostgresDatabase:
    """The cluster's tables on the server at `url` (on the process's shared pool), made or
    migrated first. Raises what asyncpg raises when the server cannot be reached."""
    db = await PostgresDatabase.open(url, schema)
    try:
        await migrate(db, MIGRATIONS, newer=NewerClusterSchema, schema=schema)
    except BaseException:
        await db.close()
        raise
    return db

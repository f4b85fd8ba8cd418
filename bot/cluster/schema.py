"""The cluster's own tables, in a PostgreSQL schema of their own (`cluster`), beside the
communities' schemas on the same server: who owns which community (`leases`), which processes are
alive (`members`), the push events waiting for their community's owner (`inbox`), the Sonoran
budgets all of them spend (`budgets`), and their turns to open a gateway session (`identify`).
Made at open by numbered migrations (`bot.db.migrate`)."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from bot.db import PostgresDatabase, migrate

if TYPE_CHECKING:
    from bot.config import StateSettings

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
    # 2: push events taken by a process that does not own their community (`inbox`)
    """
    CREATE TABLE inbox (
        id BIGSERIAL PRIMARY KEY,
        community TEXT NOT NULL,
        server_id BIGINT NOT NULL,
        body BYTEA NOT NULL,
        received_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX inbox_community ON inbox (community, id)
    """,
    # 3: one row per budget key (a tenant) and operation: the times of the requests sent in the last
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
    # 4: the next free gateway IDENTIFY slot, shared by the processes (bot/cluster/identify.py)
    """
    CREATE TABLE identify (
        bucket INTEGER PRIMARY KEY,
        next_at DOUBLE PRECISION NOT NULL
    )
    """,
    # 5: a process is `ready` once it has opened every community (bot/cluster/members.py)
    """
    ALTER TABLE members ADD COLUMN ready BOOLEAN NOT NULL DEFAULT false
    """,
]


def cluster_schema(state: StateSettings) -> str:
    """The cluster's schema for a deployment: `cluster`, or beside its registry's own schema
    (`state.schema_name`) when it names one, so that two deployments on one server never meet."""
    return f"{state.schema_name[:55]}_cluster" if state.schema_name else SCHEMA


class NewerClusterSchema(Exception):
    def __init__(self, found: int) -> None:
        super().__init__(
            f"the cluster tables are at migration {found}, newer than this bot's {len(MIGRATIONS)}: "
            "upgrade this process"
        )


def own_pool_url(url: str, name: str = "sonoran-bot-cluster") -> str:
    """`url`, marked (`application_name`) so that statements on it get a pool of their own: the
    cluster's budget statement is one round trip (a connection of the stores' pool sets its
    search_path first), and with another `name` the leases' renewals never wait for a connection
    behind budget or store statements."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "application_name" for name, _ in query):
        return url
    query.append(("application_name", name))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def open_cluster(url: str, schema: str = SCHEMA, pool: str = "sonoran-bot-cluster") -> PostgresDatabase:
    """The cluster's tables on the server at `url` (on a pool of the process's own for them,
    named `pool`), made or migrated first. Raises what asyncpg raises when the server cannot be
    reached."""
    db = await PostgresDatabase.open(own_pool_url(url, pool), schema)
    try:
        await migrate(db, MIGRATIONS, newer=NewerClusterSchema, schema=schema)
    except BaseException:
        await db.close()
        raise
    return db

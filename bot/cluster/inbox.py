"""Push events taken by a process that does not own their community: stored in PostgreSQL (the
`inbox` table of the cluster's schema) before the listener answers 200, and posted by the owner.

- `put` stores one request's body (already checked against the community's key by the process
  that took it) in one statement, which also NOTIFYs channel `cluster_inbox` with the community:
  the notification is sent when the row is committed, never before.
- The owner listens (`listen`, a connection of its own, opened again when it drops) and, when told,
  or at each lease tick in case a notification was missed (a dropped connection, a takeover),
  `take`s the community's rows in order, hands them to its feed engine, and `done` deletes them
  once the engine has stored them. A row is deleted only after it is stored in the community's
  state: an owner killed in between leaves it for the next owner, which stores it again (the
  engine takes the same event twice as once: a call it knows is not posted again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from bot.db import PostgresDatabase
from bot.tasks import cancel_and_wait

from .leases import UNREACHABLE
from .schema import NOW

log = logging.getLogger("bot.cluster")

CHANNEL = "cluster_inbox"
TAKE_AT_ONCE = 50  # rows a drain reads in one statement
RECONNECT_SECONDS = 2.0

_PUT = f"""
WITH stored AS (
    INSERT INTO inbox (community, server_id, body, received_at) VALUES (?, ?, ?, {NOW}) RETURNING community
)
SELECT pg_notify('{CHANNEL}', community) FROM stored
"""


@dataclass(frozen=True)
class Pushed:
    id: int
    server_id: int
    body: bytes
    received_at: float  # the database's clock


class Inbox:
    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db
        self._listener: asyncio.Task[None] | None = None

    async def put(self, community: str, server_id: int, body: bytes) -> None:
        """Stored and committed when this returns; raises (UNREACHABLE) when it could not be."""
        await self.db.fetch(_PUT, (community, server_id, body))

    async def take(self, community: str, limit: int = TAKE_AT_ONCE) -> list[Pushed]:
        rows = await self.db.fetch(
            "SELECT id, server_id, body, received_at FROM inbox WHERE community = ? ORDER BY id LIMIT ?",
            (community, limit),
        )
        return [Pushed(int(r["id"]), int(r["server_id"]), bytes(r["body"]), float(r["received_at"])) for r in rows]

    async def done(self, ids: list[int]) -> None:
        if ids:
            await self.db.execute("DELETE FROM inbox WHERE id = ANY(?::bigint[])", (ids,))

    async def pending(self) -> dict[str, int]:
        """Rows waiting, by community (the owners' sweep at each tick)."""
        rows = await self.db.fetch("SELECT community, count(*) AS n FROM inbox GROUP BY community")
        return {row["community"]: int(row["n"]) for row in rows}

    async def forget(self, community: str) -> None:
        """A community deleted: what waited for it goes with it."""
        await self.db.execute("DELETE FROM inbox WHERE community = ?", (community,))

    # --- the owner's ear ---------------------------------------------------------------------------
    def listen(self, told: Callable[[str], None]) -> None:
        """Calls `told(community)` for each notification, on a connection of its own, until `close`."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(told), name="cluster inbox listener")

    async def _listen(self, told: Callable[[str], None]) -> None:
        def on_notify(connection: Any, pid: int, channel: str, payload: str) -> None:
            told(payload)

        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(self.db.url, timeout=RECONNECT_SECONDS * 5)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, on_notify)
                await lost.wait()
                log.warning("cluster inbox: the listening connection dropped; listening again")
            except UNREACHABLE as error:
                log.warning("cluster inbox: cannot listen (%s); trying again", type(error).__name__)
            finally:
                if connection is not None:
                    with contextlib.suppress(*UNREACHABLE):
                        await asyncio.shield(connection.close(timeout=1))
            await asyncio.sleep(RECONNECT_SECONDS)

    async def close(self) -> None:
        await cancel_and_wait(self._listener)
        self._listener = None

"""Which processes make up the cluster: a `members` row per running process, its heartbeat
stamped on the database's clock, deleted on a clean stop; and `cluster_view`, what
`python -m bot cluster` prints (each live process, its shards and the communities it owns)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.config import shard_of
from bot.db import Database
from bot.tasks import cancel_and_wait

from .leases import DEFAULT_TTL, UNREACHABLE
from .schema import NOW

log = logging.getLogger("bot.cluster")


def process_id() -> str:
    """A member id no other process has, now or later: host, pid and a random part (a restarted
    process with the same pid is a new member, and never inherits the old one's leases)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def format_shards(shard_ids: Sequence[int]) -> str:
    return ",".join(str(shard) for shard in sorted(shard_ids))


class Membership:
    """This process's row: written at `start`, its heartbeat stamped every `interval`, deleted at `stop`."""

    def __init__(
        self,
        db: Database,
        member_id: str,
        *,
        shard_ids: Sequence[int] = (),
        shard_count: int = 1,
        interval: float = DEFAULT_TTL / 3,
    ) -> None:
        self.db = db
        self.id = member_id
        self.shard_ids = tuple(shard_ids)
        self.shard_count = shard_count
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.db.execute(
            f"""INSERT INTO members (id, host, pid, shard_ids, shard_count, started_at, heartbeat_at)
            VALUES (?, ?, ?, ?, ?, {NOW}, {NOW})
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at""",
            (self.id, socket.gethostname(), os.getpid(), format_shards(self.shard_ids), self.shard_count),
        )
        self._task = asyncio.create_task(self._beat(), name=f"cluster heartbeat {self.id}")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.wait_for(
                    self.db.execute(f"UPDATE members SET heartbeat_at = {NOW} WHERE id = ?", (self.id,)),
                    self.interval,
                )
            except UNREACHABLE as error:
                log.warning("cluster: cannot stamp this process's heartbeat (%s)", type(error).__name__)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        with contextlib.suppress(*UNREACHABLE):  # it ages out of the view anyway
            await asyncio.wait_for(self.db.execute("DELETE FROM members WHERE id = ?", (self.id,)), self.interval)


async def mark_ready(db: Database, member_id: str) -> None:
    """This process has opened every community: the others may hand it those its shards carry."""
    await db.execute("UPDATE members SET ready = true WHERE id = ?", (member_id,))


@dataclass(frozen=True)
class Carrier:
    """A live, ready process and the shards it runs: the guilds whose commands reach it."""

    id: str
    shard_ids: frozenset[int]
    shard_count: int

    def carries(self, guild_id: int) -> bool:
        return shard_of(guild_id, self.shard_count) in self.shard_ids


async def live_carriers(db: Database, within: float) -> list[Carrier]:
    """The processes ready, with a heartbeat in the last `within` seconds (the database's clock)."""
    rows = await db.fetch(
        f"SELECT id, shard_ids, shard_count FROM members WHERE ready AND heartbeat_at > {NOW} - ?::double precision",
        (within,),
    )
    carriers = []
    for row in rows:
        count = max(1, int(row["shard_count"]))
        shards = frozenset(int(part) for part in str(row["shard_ids"]).split(",") if part.strip().isdigit())
        carriers.append(Carrier(str(row["id"]), shards or frozenset(range(count)), count))
    return carriers


@dataclass(frozen=True)
class MemberView:
    id: str
    host: str
    pid: int
    shard_ids: str  # "0,1,2"; empty when the process runs no shard of its own
    shard_count: int
    started_at: float  # the database's clock
    heartbeat_age: float  # seconds since its last heartbeat, on the database's clock
    communities: tuple[str, ...] = field(default=())  # whose live lease it holds


@dataclass(frozen=True)
class LeaseView:
    community: str
    owner: str
    fence: int
    expires_in: float  # negative: expired (or released) that long ago


async def cluster_view(db: Database, ttl: float = DEFAULT_TTL) -> list[MemberView]:
    """The live processes (a heartbeat within 3 ttl), oldest first, each with the communities it
    holds a live lease on."""
    rows = await db.fetch(
        f"""SELECT id, host, pid, shard_ids, shard_count, started_at, {NOW} - heartbeat_at AS age
        FROM members WHERE heartbeat_at > {NOW} - ?::double precision ORDER BY started_at, id""",
        (3 * ttl,),
    )
    owned: dict[str, list[str]] = {}
    for lease in await lease_view(db):
        if lease.expires_in > 0:
            owned.setdefault(lease.owner, []).append(lease.community)
    return [
        MemberView(
            row["id"],
            row["host"],
            int(row["pid"]),
            row["shard_ids"],
            int(row["shard_count"]),
            float(row["started_at"]),
            float(row["age"]),
            tuple(owned.get(row["id"], ())),
        )
        for row in rows
    ]


async def lease_view(db: Database) -> list[LeaseView]:
    """Every lease row, by community."""
    rows = await db.fetch(
        f"SELECT community, owner, fence, expires_at - {NOW} AS remaining FROM leases ORDER BY community"
    )
    return [LeaseView(row["community"], row["owner"], int(row["fence"]), float(row["remaining"])) for row in rows]

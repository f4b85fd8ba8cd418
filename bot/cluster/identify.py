"""Discord lets a bot IDENTIFY one gateway session at a time, about one every 5 s (per
`max_concurrency` bucket; 1 for most bots). discord.py spaces its own shards, but the processes of a
cluster start together (compose starts them at once, and a killed one restarts alone), so they
take turns through PostgreSQL: one statement books the next free slot, on the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.db import Database

from .schema import NOW

IDENTIFY_SECONDS = 5.0

_BOOK = f"""
INSERT INTO identify AS i (bucket, next_at) VALUES (0, {NOW} + ?::double precision)
ON CONFLICT (bucket) DO UPDATE SET next_at = greatest(i.next_at, {NOW}) + ?::double precision
RETURNING next_at - ?::double precision AS slot, next_at - ?::double precision - {NOW} AS wait
"""


@dataclass(frozen=True)
class Turn:
    slot: float  # when this IDENTIFY may go, on the database's clock
    wait: float  # seconds from now until then (0 when the slot is now)


async def identify_turn(db: Database, spacing: float = IDENTIFY_SECONDS) -> Turn:
    """Books the cluster's next IDENTIFY slot, `spacing` after the last one booked."""
    (row,) = await db.fetch(_BOOK, (spacing, spacing, spacing, spacing))
    return Turn(float(row["slot"]), max(0.0, float(row["wait"])))

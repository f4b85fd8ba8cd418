"""Sonoran's per-key budgets shared by the processes of a cluster: a row in PostgreSQL per
(budget key, operation), so that a community's requests stay within Sonoran's limits whichever
process sends them, and a process that takes a community over counts what the one before it
(even one killed a second ago) spent this minute.

`SharedLimiter` is a `bot.sonoran.ratelimit.Limiter`: `shared_limiters(db, key)` is the factory
`HttpCore` takes (`open_services(..., limiter_factory=...)`). The budget key is the caller's
(the hosted tenant's id), never the API key.

- One statement per attempt (`_SPEND`): the row is locked, the stamps that left the window are
  dropped, and a slot is taken (the database's time appended) only when the window has room and
  no 429 holds the operation back; otherwise the wait is computed in the same statement. Every
  time is the database's clock (`NOW`), so processes whose clocks disagree still agree.
- The row is made on a limiter's first use (`INSERT ... ON CONFLICT DO NOTHING`).
- `block_for` (a 429) holds this process back at once and is written by one background statement
  (at most one per limiter at a time), and by every statement after it until written.
- A local lock queues this process's callers, so that they take turns instead of all locking the
  row at once; a caller that may wait sleeps holding it, as `SlidingWindowLimiter` does.
- When the database cannot be reached in time the limiter fails closed: it refuses, with a wait of
  `UNREACHABLE_WAIT`, rather than send a request nobody counted. One warning per episode.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable

from bot.db import Database

from .leases import UNREACHABLE
from .schema import NOW

log = logging.getLogger("bot.cluster.budget")

PERIOD = 60.0  # Sonoran counts per minute
TIMEOUT = 2.0  # the longest one statement may take before the limiter refuses
UNREACHABLE_WAIT = 5.0  # what a refusal says when the budget could not be read

_CREATE = "INSERT INTO budgets (budget_key, operation) VALUES (?, ?) ON CONFLICT DO NOTHING"

# Parameters: key, operation, period, capacity (the limit less the reserve), block (seconds from
# now a 429 said to wait; 0 for none). Returns no row when the row is missing; else the wait
# (0: a slot was taken, at `t`). `t` is read after the row is locked, so the stamps stay in order.
_SPEND = f"""
WITH p AS (
    SELECT ?::text AS budget_key, ?::text AS operation, ?::double precision AS period,
        ?::integer AS capacity, ?::double precision AS block
), cur AS (
    SELECT b.stamps, b.blocked_until FROM budgets b, p
    WHERE b.budget_key = p.budget_key AND b.operation = p.operation
    FOR UPDATE OF b
), clocked AS (
    SELECT cur.*, {NOW} AS t FROM cur
), live AS (
    SELECT c.t, c.blocked_until AS was_blocked, GREATEST(c.blocked_until, c.t + p.block) AS blocked,
        ARRAY(SELECT s FROM unnest(c.stamps) s WHERE s > c.t - p.period ORDER BY s) AS stamps
    FROM clocked c, p
), verdict AS (
    SELECT l.*, GREATEST(
        l.blocked - l.t,
        CASE
            WHEN p.capacity < 1 THEN p.period
            WHEN cardinality(l.stamps) >= p.capacity
                THEN l.stamps[cardinality(l.stamps) - p.capacity + 1] + p.period - l.t
            ELSE 0
        END,
        0
    ) AS wait
    FROM live l, p
), written AS (
    UPDATE budgets b
    SET stamps = CASE WHEN v.wait <= 0 THEN v.stamps || v.t ELSE v.stamps END, blocked_until = v.blocked
    FROM verdict v, p
    WHERE b.budget_key = p.budget_key AND b.operation = p.operation
        AND (v.wait <= 0 OR v.blocked > v.was_blocked)
    RETURNING 1
)
SELECT wait, t FROM verdict
"""


class _Episode:
    """Whether the budget table of one database is currently unreachable: a warning when that
    starts, a line when it ends, nothing for the calls in between (shared by its limiters)."""

    def __init__(self) -> None:
        self.down = False

    def failed(self, error: BaseException) -> None:
        if not self.down:
            self.down = True
            log.warning(
                "Sonoran budget: the database cannot be reached (%s); refusing requests until it can",
                type(error).__name__,
            )

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            log.info("Sonoran budget: the database answers again")


_episodes: weakref.WeakKeyDictionary[Database, _Episode] = weakref.WeakKeyDictionary()


def _episode_of(db: Database) -> _Episode:
    episode = _episodes.get(db)
    if episode is None:
        episode = _episodes[db] = _Episode()
    return episode


class SharedLimiter:
    """At most `limit` acquisitions of `operation` for `key` in any `period` seconds, counted by
    every process using the cluster's database `db` (its `budgets` table)."""

    def __init__(
        self,
        db: Database,
        key: str,
        operation: str,
        limit: int,
        *,
        period: float = PERIOD,
        timeout: float = TIMEOUT,
    ) -> None:
        self.db = db
        self.key = key
        self.operation = operation
        self.limit = limit
        self.period = period
        self.timeout = timeout
        self.taken_at: float | None = None  # the database's time of the last slot this limiter took
        self._episode = _episode_of(db)
        self._lock = asyncio.Lock()
        self._created = False
        self._blocked_until = 0.0  # time.monotonic(): a 429 this process saw, until written
        self._flushing: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"SharedLimiter({self.key!r}, {self.operation!r}, {self.limit}/{self.period:g}s)"

    async def acquire(self, max_wait: float, reserve: int = 0) -> float:
        """Takes a slot, leaving `reserve` slots of the window to others, sleeping for one when
        that fits in `max_wait`: 0.0 when taken; else (nothing taken) the wait, longer than what
        was left of `max_wait`, or `UNREACHABLE_WAIT` when the budget could not be read."""
        async with self._lock:
            deadline = time.monotonic() + max_wait
            while True:
                wait = await self._spend(self.limit - reserve)
                if wait is None:
                    return UNREACHABLE_WAIT
                if wait <= 0:
                    return 0.0
                if wait > deadline - time.monotonic():
                    return wait
                await asyncio.sleep(wait)

    def block_for(self, seconds: float) -> None:
        """The server said 429: this process holds back at once, the others once it is written."""
        self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(
                self.flush(), name=f"budget block {self.key} {self.operation}"
            )

    async def flush(self) -> None:
        """Writes a 429's wait that has not been written yet (nothing is taken)."""
        if self._blocked_until > time.monotonic():
            await self._spend(0)

    async def _spend(self, capacity: int) -> float | None:
        """One attempt: 0.0 when a slot was taken, else the wait; None when the database could not
        be reached in time (nothing known to be taken)."""
        blocked_until = self._blocked_until
        block = max(0.0, blocked_until - time.monotonic())
        try:
            async with asyncio.timeout(self.timeout):
                if not self._created:
                    await self.db.execute(_CREATE, (self.key, self.operation))
                    self._created = True
                rows = await self.db.fetch(_SPEND, (self.key, self.operation, self.period, capacity, block))
                if not rows:  # the row was removed meanwhile: made again, then counted from empty
                    self._created = False
                    await self.db.execute(_CREATE, (self.key, self.operation))
                    self._created = True
                    rows = await self.db.fetch(_SPEND, (self.key, self.operation, self.period, capacity, block))
        except UNREACHABLE as error:
            self._episode.failed(error)
            return None
        self._episode.succeeded()
        if self._blocked_until == blocked_until:
            self._blocked_until = 0.0  # written: the row holds everyone back now
        if not rows:
            return self.period
        wait, now = float(rows[0]["wait"]), float(rows[0]["t"])
        if wait <= 0:
            self.taken_at = now
            return 0.0
        return wait


def shared_limiters(db: Database, key: str) -> Callable[[str, int], SharedLimiter]:
    """The `limiter_factory` for `HttpCore` (through `open_services`): every operation's budget
    for `key` (a tenant's id, never its API key), shared through the cluster's database `db`
    (`open_cluster`)."""

    def factory(operation: str, limit: int) -> SharedLimiter:
        return SharedLimiter(db, key, operation, limit)

    return factory


async def forget_budget(db: Database, key: str) -> None:
    """A deleted community's rows (its key's stamps and blocks) go with it."""
    await db.execute("DELETE FROM budgets WHERE budget_key = ?", (key,))

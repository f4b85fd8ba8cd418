"""Who works a community: a lease row in PostgreSQL, held by one process at a time.

`Leases` is the table: `acquire` (one statement: a free, expired or already-ours row becomes
ours, with its fence one higher than the tenure before), `renew` / `renew_many` and `release`.
Every time in it is the database's clock, so processes whose clocks disagree still agree on
who holds what.

`LeaseKeeper` holds the leases of the communities a process wants:

- every `tick` (ttl / 3) it tries to acquire each wanted community it does not hold: a community
  whose owner died is taken over at most `ttl + tick` after the owner's last renewal;
- it renews all it holds in one statement every `tick`;
- each held lease has a LOCAL deadline, on the monotonic clock: the time the last successful
  renewal (or the acquire) was SENT, plus ttl, minus `margin`. The server set that lease's expiry
  at `ttl` after it ran the statement, which was after it was sent, so the local deadline falls
  `margin` before the server's expiry whatever the network or a pause did in between (the margin
  covers the two clocks' rates and the time `on_lost` takes to stop the community). When the
  deadline passes without a renewal (the database unreachable, the process paused), or the server
  answers that the lease is no longer ours, the keeper awaits `on_lost(community)`: the community
  stops writing before any other process can acquire it. `holds(community)` says whether the
  deadline is still ahead; a writer that may have been paused checks it right before it writes
  (the fence, `lease.fence`, can go with the write for a check in the database itself).

How the hosted `Host` uses it (bot/hosting/host.py, cluster mode):

    keeper = LeaseKeeper(cluster_db, owner=member_id, on_acquired=start, on_lost=stop)
    await keeper.start()
    for tenant in registry:            # at start, and for every tenant /setup adds later
        keeper.want(tenant.community_id)
    ...
    await keeper.drop(community_id)    # a tenant removed: stopped, then its lease released
    await keeper.stop()                # clean shutdown: every community stopped, leases released

    async def start(community, lease):  # build and start that tenant's community (its polls,
        ...                             # websocket, writers, Sonoran budget)
    async def stop(community):          # stop that community and wait until it has stopped:
        ...                             # no write for it may follow the return

`on_acquired` runs as a task of its own; when the lease is lost while it still runs, that task is
cancelled before `on_lost` is awaited. `on_lost` is also what `drop` and `stop` call, before
they release the lease. No lock is held across a database call: the keeper's state is only
changed between awaits, on its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.db import Database, DatabaseError
from bot.tasks import cancel_and_wait

from .schema import NOW

log = logging.getLogger("bot.cluster")

DEFAULT_TTL = 15.0
# what a lease statement raises when the database is slow, unreachable or refuses it
UNREACHABLE: tuple[type[Exception], ...] = (TimeoutError, OSError, *DatabaseError)

OnAcquired = Callable[[str, "Lease"], Awaitable[None]]
OnLost = Callable[[str], Awaitable[None]]

_ACQUIRE_MANY = f"""
INSERT INTO leases AS l (community, owner, fence, expires_at)
SELECT wanted, ?, 1, {NOW} + ?::double precision FROM unnest(?::text[]) AS wanted
ON CONFLICT (community) DO UPDATE
    SET owner = excluded.owner, fence = l.fence + 1, expires_at = excluded.expires_at
    WHERE l.expires_at <= {NOW} OR l.owner = excluded.owner
RETURNING community, owner, fence, expires_at
"""

_RENEW = f"""
UPDATE leases SET expires_at = {NOW} + ?::double precision
WHERE owner = ? AND expires_at > {NOW}
    AND (community, fence) IN (SELECT * FROM unnest(?::text[], ?::bigint[]))
RETURNING community
"""

_RELEASE = (
    f"UPDATE leases SET expires_at = {NOW} WHERE community = ? AND owner = ? AND fence = ? AND expires_at > {NOW}"
)


@dataclass(frozen=True)
class Lease:
    community: str
    owner: str
    fence: int  # one higher for each new tenure of the community
    expires_at: float  # on the database's clock
    ttl: float


class Leases:
    """The `leases` table of the cluster's schema (see `schema.open_cluster`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(self, community: str, owner: str, ttl: float) -> Lease | None:
        """The lease of `community` for `owner`, for `ttl` seconds from now on the database's
        clock, when it is free, expired, or already `owner`'s; else None."""
        taken = await self.acquire_many([community], owner, ttl)
        return taken[0] if taken else None

    async def acquire_many(self, communities: Sequence[str], owner: str, ttl: float) -> list[Lease]:
        """`acquire` for each of `communities` (distinct), in one statement: the leases taken (a
        free, expired or already-ours row becomes ours, its fence one higher than the tenure before)."""
        if not communities:
            return []
        rows = await self.db.fetch(_ACQUIRE_MANY, (owner, ttl, list(communities)))
        return [Lease(r["community"], r["owner"], int(r["fence"]), float(r["expires_at"]), ttl) for r in rows]

    async def renew(self, lease: Lease) -> bool:
        """True when the lease was still ours (same fence, not expired) and now runs `ttl` more."""
        return lease.community in await self.renew_many(lease.owner, [lease], lease.ttl)

    async def renew_many(self, owner: str, leases: Sequence[Lease], ttl: float) -> set[str]:
        """Renews `leases` in one statement; returns the communities whose lease was renewed."""
        if not leases:
            return set()
        rows = await self.db.fetch(
            _RENEW, (ttl, owner, [lease.community for lease in leases], [lease.fence for lease in leases])
        )
        return {row["community"] for row in rows}

    async def release(self, lease: Lease) -> None:
        """Ends the lease now (the row stays, with its fence, for the next tenure to count on)."""
        await self.db.execute(_RELEASE, (lease.community, lease.owner, lease.fence))


@dataclass
class _Held:
    lease: Lease
    deadline: float  # time.monotonic(): stop writing before it


async def _nothing_acquired(community: str, lease: Lease) -> None:
    return None


async def _nothing_lost(community: str) -> None:
    return None


class LeaseKeeper:
    def __init__(
        self,
        db: Database,
        owner: str,
        ttl: float = DEFAULT_TTL,
        *,
        on_acquired: OnAcquired = _nothing_acquired,
        on_lost: OnLost = _nothing_lost,
        margin: float | None = None,
    ) -> None:
        self.leases = Leases(db)
        self.owner = owner
        self.ttl = ttl
        self.tick = ttl / 3
        self.margin = ttl / 4 if margin is None else margin
        if not 0 < self.margin < ttl - self.tick:
            raise ValueError(f"margin {self.margin} must be above 0 and below ttl - tick ({ttl - self.tick})")
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self._wanted: set[str] = set()
        self._held: dict[str, _Held] = {}
        self._acquiring: set[str] = set()
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()  # a community is wanted
        self._deadlines = asyncio.Event()  # a deadline came nearer, or the first one appeared
        self._tasks: list[asyncio.Task[None]] = []
        self._losing: set[asyncio.Task[None]] = set()
        self._closing = False
        self._stopping: set[str] = set()  # on_lost running: not acquired again until it returns

    # -- what the process asks -------------------------------------------------------------

    def want(self, community: str) -> None:
        """Keep trying to hold `community` (at once, then every tick) until `drop`."""
        self._wanted.add(community)
        self._wake.set()

    def wants(self, community: str) -> bool:
        return community in self._wanted

    async def claim(self, community: str) -> bool:
        """`want(community)`, and one try to acquire it now, not at the next tick: whether this
        process holds it when this returns (`on_acquired` still runs in its own task)."""
        self._wanted.add(community)
        if not (community in self._held or community in self._acquiring or community in self._stopping):
            await self._try_acquire_many([community])
        return self.holds(community)

    async def drop(self, community: str) -> None:
        """No longer wanted: when held, stopped (`on_lost`), then its lease released."""
        self._wanted.discard(community)
        held = await self._lose(community, "dropped")
        if held is not None:
            await self._release(held.lease)

    def holds(self, community: str) -> bool:
        """Whether this process may still write for `community`: it holds the lease and its local
        deadline is ahead."""
        held = self._held.get(community)
        return held is not None and time.monotonic() < held.deadline

    def remaining(self, community: str) -> float:
        """Seconds this process may still write for `community` without another renewal (0: none)."""
        held = self._held.get(community)
        return max(0.0, held.deadline - time.monotonic()) if held is not None else 0.0

    def lease(self, community: str) -> Lease | None:
        held = self._held.get(community)
        return held.lease if held is not None else None

    @property
    def held(self) -> list[str]:
        return sorted(self._held)

    # -- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._acquire_loop(), name=f"leases acquire {self.owner}"),
            asyncio.create_task(self._renew_loop(), name=f"leases renew {self.owner}"),
            asyncio.create_task(self._watchdog(), name=f"leases watchdog {self.owner}"),
        ]

    async def stop(self, *, release: bool = True) -> None:
        """Stops every held community (`on_lost`) and, unless `release` is False, releases their
        leases for another process to take at once."""
        self._closing = True
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []
        await asyncio.gather(*self._losing)
        lost = await asyncio.gather(*(self._lose(community, "stopping") for community in list(self._held)))
        if release:
            await asyncio.gather(*(self._release(held.lease) for held in lost if held is not None))

    async def _acquire_loop(self) -> None:
        while True:
            self._wake.clear()
            busy = self._held.keys() | self._acquiring | self._stopping
            due = [c for c in self._wanted if c not in busy]
            if due:  # one statement for all of them: an idle cluster costs one a tick per process
                await self._try_acquire_many(sorted(due))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)

    async def _try_acquire_many(self, communities: list[str]) -> None:
        self._acquiring.update(communities)
        try:
            sent = time.monotonic()
            try:
                leases = await asyncio.wait_for(self.leases.acquire_many(communities, self.owner, self.ttl), self.tick)
            except UNREACHABLE as error:
                log.warning("leases: cannot acquire %d (%s)", len(communities), type(error).__name__)
                return
            for lease in leases:
                await self._took(lease, sent)
        finally:
            self._acquiring.difference_update(communities)

    async def _took(self, lease: Lease, sent: float) -> None:
        """`lease` was acquired by a statement sent at `sent`: held, and its community started;
        released at once when it is no longer wanted."""
        community = lease.community
        if self._closing or community not in self._wanted:
            await self._release(lease)
            return
        self._held[community] = _Held(lease, sent + self.ttl - self.margin)
        self._deadlines.set()
        log.info("lease of %s acquired (fence %d)", community, lease.fence)
        self._starting[community] = asyncio.create_task(
            self._acquired(community, lease), name=f"leases start {community}"
        )

    async def _acquired(self, community: str, lease: Lease) -> None:
        try:
            await self.on_acquired(community, lease)
        except Exception:
            log.exception("lease of %s: on_acquired failed; giving the lease up", community)
            held = self._held.get(community)
            if held is not None and held.lease is lease:
                self._starting.pop(community, None)  # this very task: not cancelled by _lose
                await self._lose(community, "its start failed")
                await self._release(lease)
        finally:
            if self._starting.get(community) is asyncio.current_task():
                del self._starting[community]

    async def _renew_loop(self) -> None:
        while True:
            held = dict(self._held)
            if not held:
                await asyncio.sleep(self.tick / 3)
                continue
            sent = time.monotonic()
            try:
                renewed = await asyncio.wait_for(
                    self.leases.renew_many(self.owner, [h.lease for h in held.values()], self.ttl), self.tick
                )
            except UNREACHABLE as error:
                log.warning("leases: cannot renew %d (%s); trying again", len(held), type(error).__name__)
                await asyncio.sleep(self.tick / 3)
                continue
            for community, entry in held.items():
                if self._held.get(community) is not entry:
                    continue  # lost or dropped meanwhile
                if community in renewed:
                    entry.deadline = sent + self.ttl - self.margin
                else:  # the server says it is no longer ours: stop now
                    log.warning("lease of %s: no longer ours (fence %d)", community, entry.lease.fence)
                    entry.deadline = -math.inf
                    self._deadlines.set()
            await asyncio.sleep(max(0.0, sent + self.tick - time.monotonic()))

    async def _watchdog(self) -> None:
        while True:
            self._deadlines.clear()
            now = time.monotonic()
            late = [c for c, h in self._held.items() if h.deadline <= now]
            for community in late:  # each stops in a task of its own: a slow stop delays no other
                del self._held[community]
                task = asyncio.create_task(
                    self._stopped(community, "not renewed in time"), name=f"leases lost {community}"
                )
                self._losing.add(task)
                task.add_done_callback(self._losing.discard)
            timeout = min((h.deadline for h in self._held.values()), default=now + self.tick) - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._deadlines.wait(), timeout)

    async def _lose(self, community: str, why: str) -> _Held | None:
        """Forgets the lease and awaits `on_lost`: the community has stopped when this returns."""
        held = self._held.pop(community, None)
        if held is None:
            return None
        await self._stopped(community, why)
        return held

    async def _stopped(self, community: str, why: str) -> None:
        log.warning("lease of %s: stopping it (%s)", community, why)
        self._stopping.add(community)
        try:
            await cancel_and_wait(self._starting.pop(community, None))
            await self.on_lost(community)
        except Exception:
            log.exception("lease of %s: on_lost failed", community)
        finally:
            self._stopping.discard(community)
            self._wake.set()

    async def _release(self, lease: Lease) -> None:
        try:
            await asyncio.wait_for(self.leases.release(lease), self.tick)
        except UNREACHABLE as error:  # it expires on its own
            log.warning("lease of %s: cannot release (%s)", lease.community, type(error).__name__)

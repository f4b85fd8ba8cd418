"""One writer per channel: its outbox is what its lanes hold and Discord has not seen (a feed's
batches not yet posted and messages showing an old version, panic alerts, unit boards), and its
task delivers it.

Nothing here holds a lock across a write to Discord, and each channel has its own task: a channel
whose writes fail or wait on Discord never delays another channel, nor the planning and storing
of new events and polls (`bot.feed.engine`, `bot.units.engine`), which only wake the writer.

Inside a channel, what matters goes first: every urgent write (a panic alert, a new call's post)
before any other (edits), looked for again after each write, so that a new call's POST overtakes a
poll's pending edits. An edit is rendered from the store when it is sent, so a message edited many
times meanwhile is sent its latest content once. A write that failed waits its own backoff while
the channel's others go on; a fault of the whole channel (no permission, no channel, a long rate
limit, Discord unreachable) holds the channel until its backoff ends, or until Discord's
`retry_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..backoff import Backoff
from ..tasks import cancel_and_wait
from .writes import Fault

log = logging.getLogger("bot.feed")

RETRY_STEPS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds, after 1, 2, 3... failures in a row
JITTER = 0.25


@dataclass(frozen=True)
class Job:
    """One write to Discord: `key` names it within its channel (its backoff after a failure)."""

    key: str
    write: Callable[[], Awaitable[Fault | None]]


class Lane(Protocol):
    """One kind of message a channel shows (call posts, panic alerts, a unit board): what it has to
    deliver, most urgent first. The channel's writer asks its lanes in the order they were added."""

    async def next_job(self, due: Callable[[str], bool], *, urgent: bool) -> Job | None:
        """A write to make now among those `due` lets through (urgent ones only, or the others)."""

    async def waiting(self) -> set[str]:
        """The keys of every write still to make (failures of others are forgotten)."""

    def due_in(self) -> float | None:
        """Seconds until a write held back on purpose (a coalesced edit) is due; None: none is."""


class ChannelWriter:
    """Delivers one channel's outbox, whatever its lanes. `wake()` says there is something new;
    `wake(retry=True)` also retries at once what failed (not what Discord asked to hold), as a poll
    cycle does."""

    def __init__(self, channel_id: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.channel_id = channel_id
        self._lanes: list[Lane] = []
        self._clock = clock
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._retry = False
        self._channel = Backoff(steps=RETRY_STEPS, jitter=JITTER)
        self._held_until = 0.0  # the whole channel waits until then
        self._rate_limited_until = 0.0  # Discord's own retry_after: not cut short by a poll
        self._failed_jobs: dict[str, tuple[Backoff, float]] = {}  # a failed write: its backoff, and until when
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"ChannelWriter(channel={self.channel_id}, lanes={len(self._lanes)})"

    def add(self, lane: Lane, *, first: bool = False) -> None:
        """Adds a lane; lanes added earlier (or `first`) go first among writes of the same urgency."""
        self._lanes.insert(0 if first else len(self._lanes), lane)
        self.wake()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"channel-writer-{self.channel_id}")
            self.wake()  # what a crash left unsent goes out at start

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def wake(self, *, retry: bool = False) -> None:
        self._retry = self._retry or retry
        self._idle.clear()  # at once: `settled` must not return before this is looked at
        self._wake.set()

    async def settled(self) -> None:
        """Returns once everything due has been tried: sent, or failed and waiting to be retried."""
        if self._task is not None:
            await self._idle.wait()

    @property
    def failing(self) -> bool:
        return self._channel.failures > 0 or bool(self._failed_jobs)

    async def _run(self) -> None:
        while True:
            if not self._wake.is_set():
                self._idle.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_round_in())
            self._wake.clear()
            self._idle.clear()
            if self._retry:
                self._retry = False
                self._held_until = self._rate_limited_until
                self._failed_jobs = {key: (backoff, 0.0) for key, (backoff, _) in self._failed_jobs.items()}
            try:
                await self._round()
            except Exception:  # a bug must not end the channel's writer; the next wake tries again
                log.exception("feed: channel %s: delivery failed", self.channel_id)
                self._hold(Fault("delivery failed", wide=True))

    def _next_round_in(self) -> float | None:
        """Seconds until something that failed, or was held back, may be tried; None: nothing waits."""
        now = self._clock()
        if self._held_until > now:
            return self._held_until - now
        times = [until - now for _, until in self._failed_jobs.values()]
        times.extend(wait for lane in self._lanes if (wait := lane.due_in()) is not None)
        return max(0.0, min(times)) if times else None

    async def _round(self) -> None:
        """Makes the writes that are due, most urgent first, until none is or the channel fails."""
        tried: set[str] = set()
        while self._clock() >= self._held_until:
            job = await self._next(tried)
            if job is None:
                return
            tried.add(job.key)
            fault = await job.write()
            if fault is not None:
                self._failed(job.key, fault)
                if fault.wide:
                    return
                continue
            self._failed_jobs.pop(job.key, None)
            self._channel.succeeded()

    async def _next(self, tried: set[str]) -> Job | None:
        now = self._clock()
        if self._failed_jobs:  # forget the failures of writes that left the outbox meanwhile
            waiting: set[str] = set()
            for lane in self._lanes:
                waiting |= await lane.waiting()
            self._failed_jobs = {key: entry for key, entry in self._failed_jobs.items() if key in waiting}

        def due(key: str) -> bool:
            return key not in tried and self._failed_jobs.get(key, (None, 0.0))[1] <= now

        for urgent in (True, False):
            for lane in self._lanes:
                job = await lane.next_job(due, urgent=urgent)
                if job is not None:
                    return job
        return None

    def _failed(self, key: str, fault: Fault) -> None:
        if fault.wide:
            self._hold(fault)
            return
        backoff, _ = self._failed_jobs.get(key) or (Backoff(steps=RETRY_STEPS, jitter=JITTER), 0.0)
        self._failed_jobs[key] = (backoff, self._clock() + backoff.failed())

    def _hold(self, fault: Fault) -> None:
        wait = self._channel.failed()
        if fault.retry_after is not None:
            wait = max(wait, fault.retry_after)
            self._rate_limited_until = self._clock() + fault.retry_after
        self._held_until = self._clock() + wait

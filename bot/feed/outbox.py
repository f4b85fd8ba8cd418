"""One writer per feed channel: its outbox is what the channel's book holds and Discord has not
seen (batches not yet posted, messages showing an old version), and its task delivers it.

Nothing here holds a lock across a write to Discord, and each channel has its own task: a channel
whose writes fail or wait on Discord never delays another channel, nor the planning and storing
of new events and polls (`bot.feed.engine`), which only wake the writer.

Inside a channel, what matters goes first: every new post before any edit, looked for again after
each write, so that a new call's POST overtakes a poll's pending edits. An edit is rendered from the
store when it is sent, so a message edited many times meanwhile is sent its latest content once. A
batch whose write failed waits its own backoff while the channel's other batches go on; a fault of
the whole channel (no permission, no channel, a long rate limit, Discord unreachable) holds the
channel until its backoff ends, or until Discord's `retry_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..backoff import Backoff
from ..config import FeedSettings
from ..posts import Post
from ..store import Store
from .planner import Book, stale_batches, unsent_posts
from .sender import Fault, Sender

log = logging.getLogger("bot.feed")

RETRY_STEPS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # seconds, after 1, 2, 3... failures in a row
JITTER = 0.25


@dataclass
class _Job:
    batch: str
    posts: list[Post] | None  # a new post's batch; None: an edit, read from the store when sent


class ChannelWriter:
    """Delivers one feed channel's outbox. `wake()` says there is something new; `wake(retry=True)`
    also retries at once what failed (not what Discord asked to hold), as a poll cycle does."""

    def __init__(
        self,
        feed: FeedSettings,
        book_of: Callable[[FeedSettings], Awaitable[Book]],
        sender: Sender,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feed = feed
        self._book_of = book_of
        self._sender = sender
        self._store = store
        self._clock = clock
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._retry = False
        self._channel = Backoff(steps=RETRY_STEPS, jitter=JITTER)
        self._held_until = 0.0  # the whole channel waits until then
        self._rate_limited_until = 0.0  # Discord's own retry_after: not cut short by a poll
        self._batches: dict[str, tuple[Backoff, float]] = {}  # a failed batch: its backoff, and until when
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"ChannelWriter(channel={self.feed.channel_id}, server={self.feed.server_id})"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"feed-writer-{self.feed.channel_id}")
            self.wake()  # what a crash left unsent goes out at start

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self, *, retry: bool = False) -> None:
        self._retry = self._retry or retry
        self._idle.clear()  # at once: `settled` must not return before this is looked at
        self._wake.set()

    async def settled(self) -> None:
        """Returns once everything due has been tried: sent, or failed and waiting to be retried."""
        await self._idle.wait()

    @property
    def failing(self) -> bool:
        return self._channel.failures > 0 or bool(self._batches)

    async def _run(self) -> None:
        while True:
            if not self._wake.is_set():
                self._idle.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_retry_in())
            self._wake.clear()
            self._idle.clear()
            if self._retry:
                self._retry = False
                self._held_until = self._rate_limited_until
                self._batches = {batch: (backoff, 0.0) for batch, (backoff, _) in self._batches.items()}
            try:
                await self._round()
            except Exception:  # a bug must not end the channel's writer; the next wake tries again
                log.exception("feed: channel %s: delivery failed", self.feed.channel_id)
                self._hold(Fault("delivery failed", wide=True))

    def _next_retry_in(self) -> float | None:
        """Seconds until something that failed may be tried again; None: nothing waits."""
        now = self._clock()
        if self._held_until > now:
            return self._held_until - now
        times = [until for _, until in self._batches.values()]
        return max(0.0, min(times) - now) if times else None

    async def _round(self) -> None:
        """Sends what is due, most important first, until nothing is due or the channel fails."""
        tried: set[str] = set()
        while self._clock() >= self._held_until:
            book = await self._book_of(self.feed)
            job = self._next(book, tried)
            if job is None:
                return
            tried.add(job.batch)
            if job.posts is not None:
                result = await self._sender.send(self.feed, job.posts)
            else:
                rows = await self._store.batch(job.batch)
                if not _news(book, rows):
                    continue  # the change is planned but not yet stored: its commit wakes us again
                result = await self._sender.edit(self.feed, rows)
            if isinstance(result, Fault):
                self._failed(job.batch, result)
                if result.wide:
                    return
                continue
            self._batches.pop(job.batch, None)
            self._channel.succeeded()
            (await self._book_of(self.feed)).confirm(result)

    def _next(self, book: Book, tried: set[str]) -> _Job | None:
        now = self._clock()

        unsent, stale = unsent_posts(book), stale_batches(book)
        if self._batches:  # forget the failures of batches that left the outbox meanwhile
            waiting = unsent.keys() | set(stale)
            self._batches = {batch: entry for batch, entry in self._batches.items() if batch in waiting}

        def due(batch: str) -> bool:
            return batch not in tried and self._batches.get(batch, (None, 0.0))[1] <= now

        for batch, posts in unsent.items():
            if due(batch):
                return _Job(batch, posts)
        for batch in stale:
            if due(batch):
                return _Job(batch, None)
        return None

    def _failed(self, batch: str, fault: Fault) -> None:
        if fault.wide:
            self._hold(fault)
            return
        backoff, _ = self._batches.get(batch) or (Backoff(steps=RETRY_STEPS, jitter=JITTER), 0.0)
        self._batches[batch] = (backoff, self._clock() + backoff.failed())

    def _hold(self, fault: Fault) -> None:
        wait = self._channel.failed()
        if fault.retry_after is not None:
            wait = max(wait, fault.retry_after)
            self._rate_limited_until = self._clock() + fault.retry_after
        self._held_until = self._clock() + wait


def _news(book: Book, rows: list[Post]) -> bool:
    """The stored rows hold something the message does not show yet."""
    for row in rows:
        held = book.open.get(row.key)
        if held is not None and held.shown != row.version:
            return True
    return False

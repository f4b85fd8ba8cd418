"""A feed's call posts as a lane of their channel's one writer (`bot.delivery.outbox`): new posts
(urgent) before edits, each edit rendered from the store when it is sent."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from ..config import FeedSettings
from ..delivery.outbox import Job
from ..delivery.writes import Fault
from ..posts import Post
from ..store import Store
from .planner import Book, stale_batches, unsent_posts
from .sender import Sender


class CallsLane:
    """A feed's call posts in its channel: new posts (urgent) before edits, each edit rendered from
    the store when it is sent."""

    def __init__(
        self, feed: FeedSettings, book_of: Callable[[FeedSettings], Awaitable[Book]], sender: Sender, store: Store
    ) -> None:
        self.feed = feed
        self._book_of = book_of
        self._sender = sender
        self._store = store

    def __repr__(self) -> str:
        return f"CallsLane(channel={self.feed.channel_id}, server={self.feed.server_id})"

    async def next_job(self, due: Callable[[str], bool], *, urgent: bool) -> Job | None:
        book = await self._book_of(self.feed)
        if urgent:
            for batch, posts in unsent_posts(book).items():
                if due(batch):
                    return Job(
                        batch, functools.partial(self._deliver, functools.partial(self._sender.send, self.feed, posts))
                    )
            return None
        for batch in stale_batches(book):
            if due(batch):
                rows = await self._store.batch(batch)
                if _news(book, rows):  # else the change is planned but not yet stored: its commit wakes us
                    return Job(
                        batch, functools.partial(self._deliver, functools.partial(self._sender.edit, self.feed, rows))
                    )
        return None

    async def _deliver(self, write: Callable[[], Awaitable[list[Post] | Fault]]) -> Fault | None:
        result = await write()
        if isinstance(result, Fault):
            return result
        (await self._book_of(self.feed)).confirm(result)
        return None

    async def waiting(self) -> set[str]:
        book = await self._book_of(self.feed)
        return set(unsent_posts(book)) | set(stale_batches(book))

    def due_in(self) -> float | None:
        return None


def _news(book: Book, rows: list[Post]) -> bool:
    """The stored rows hold something the message does not show yet."""
    for row in rows:
        held = book.open.get(row.key)
        if held is not None and held.shown != row.version:
            return True
    return False

"""The call feed: keeps one channel message per batch of calls, posted once and edited in place as
the calls are answered, removed or closed.

Two ways in, one logic:
- the poll (`poll_once`, every `sonoran.poll_seconds`): one GET_CALLS per CAD server that a
  `[[feeds]]` entry names, through the call board (which `/calls` and autocomplete then reuse);
- push events (`push.enabled`): the listener (`bot.push`) queues them, and a worker takes them in.

Both go through the pure planner (`bot.planner`) against each channel's `Book`, the open posts
kept in memory in step with the store. The plan is stored *before* anything is sent, then
delivered through the one `Sender`. While events arrive, the poll slows to
`push.poll_seconds_when_live`; it never stops, because Sonoran sends no events for changes made
through its API, and events can be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path

import discord
from discord.ext import commands

from bot.callboard import Snapshot
from bot.config import FeedSettings
from bot.core import DispatchBot
from bot.planner import (
    Book,
    FeedRules,
    answered_911,
    message_group,
    plan_event,
    plan_snapshot,
    revivals,
    stale_batches,
    unsent_posts,
)
from bot.posts import Post, PostKey, PostKind, PostState, content_version
from bot.push import PushListener
from bot.push_ws import PushSessions
from bot.sender import Sender, batches
from bot.sonoran import CallId, CallList, RateLimited, ServerId, SonoranError
from bot.sonoran.events import Event
from bot.statechanges import StateChanges

__all__ = ["Feed", "content_version"]

log = logging.getLogger(__name__)

MIN_BACKOFF_CAP = 60.0  # the first call filed after the CAD recovers is posted within max(poll_seconds, this)
KEEP_ENDED_SECONDS = 7 * 24 * 3600
PRUNE_EVERY = 3600.0
LIVE_WINDOWS = 2  # events within this many `poll_seconds_when_live` make the feed "live"


def rules_of(feed: FeedSettings) -> FeedRules:
    return FeedRules(
        channel_id=feed.channel_id,
        server_id=feed.server_id,
        emergency="emergency" in feed.calls,
        civil="civil" in feed.calls,
        dispatch=feed.dispatch,
        ping=bool(feed.ping_role_id),
    )


class Feed(commands.Cog):
    """Posts new CAD calls to the configured channels and keeps those posts up to date."""

    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot
        self.settings = bot.settings
        self.poll_seconds = bot.settings.sonoran.poll_seconds
        self._cycle = asyncio.Lock()  # one poll cycle at a time
        self._lock = asyncio.Lock()  # the books, the store's posts and delivery: one writer at a time
        self._task: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._books: dict[tuple[int, ServerId], Book] = {}
        self._events: asyncio.Queue[tuple[ServerId, list[Event]]] = asyncio.Queue()
        self._last_event_at: float | None = None
        self._server_state = StateChanges()
        self._health_state = StateChanges()
        self._failed_cycles = 0
        self._presence_count: int | None = None
        self._last_prune = 0.0
        self.push_listener: PushListener | None = None
        self.push_sessions: PushSessions | None = None

    @functools.cached_property
    def sender(self) -> Sender:
        # on first use: a bot that only syncs commands has no store
        return Sender(self.bot, self.bot.store, attach_buttons=self.settings.sonoran.api_version == 2)

    async def cog_load(self) -> None:
        push = self.settings.push
        if push.enabled:
            self.push_listener = PushListener(
                host=push.host,
                port=push.port,
                path=push.path,
                default_server_id=self.settings.push_server_id,
                api_key=self.settings.sonoran.api_key.get_secret_value(),
                routes=lambda server_id: server_id in self.settings.feed_server_ids,
                deliver=self._queue_events,
            )
            if push.websocket:  # checked before binding: a missing extra is one clear line too
                self.push_sessions = PushSessions(
                    self.push_listener,
                    api_url=self.settings.sonoran.base_url,
                    community_id=self.settings.sonoran.community_id,
                    api_key=self.settings.sonoran.api_key.get_secret_value(),
                    server_ids=self.settings.feed_server_ids,
                )
            await self.push_listener.start()  # a taken port stops the start here, with one clear line
            if self.push_sessions is not None:
                self.push_sessions.start()
            self._worker = asyncio.create_task(self._take_events(), name="feed-events")
        if self.bot.autostart_feed:
            self.start()

    def start(self) -> None:
        """Starts the loop (once). It runs even with no feeds: each cycle then only refreshes the
        health file."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="feed-loop")

    async def cog_unload(self) -> None:
        if self.push_sessions is not None:
            await self.push_sessions.stop()
        if self.push_listener is not None:
            await self.push_listener.stop()  # no new events first
        for task in (self._worker, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._worker = self._task = None

    async def _run(self) -> None:
        log.info("feed: polling %d CAD server(s) every %gs", len(self.settings.feed_server_ids), self.poll_seconds)
        while True:
            try:
                delay = await self.poll_once()
            except Exception:  # a bug must not end the feed; say so once per cycle and carry on
                log.exception("feed: cycle failed")
                delay = self._backoff_cap
            await asyncio.sleep(delay)

    @property
    def _backoff_cap(self) -> float:
        return max(self.poll_seconds, MIN_BACKOFF_CAP)

    @property
    def live(self) -> bool:
        """Events arrived recently: the poll only reconciles, at `push.poll_seconds_when_live`."""
        window = LIVE_WINDOWS * self.settings.push.poll_seconds_when_live
        return self._last_event_at is not None and time.monotonic() - self._last_event_at < window

    @property
    def interval(self) -> float:
        return max(self.poll_seconds, self.settings.push.poll_seconds_when_live) if self.live else self.poll_seconds

    # --- the poll ----------------------------------------------------------------------------------
    async def poll_once(self) -> float:
        """Runs one poll-and-post cycle over every feed; returns the wait before the next one."""
        async with self._cycle:
            delay = self.interval
            # the call-list slots the feed's polls need; members may use the rest (the budget rule)
            self.bot.board.feed_reserve = math.ceil(60 / delay) * len(self.settings.feed_server_ids)
            failed = False
            snapshots: list[tuple[ServerId, Snapshot]] = []
            for server_id in self.settings.feed_server_ids:
                try:
                    # one request a cycle: retrying at once would spend the minute's budget on a
                    # CAD that is failing and lock the next polls out; the next cycle is the retry
                    snapshots.append((server_id, await self.bot.board.refresh(server_id, retry=False)))
                except SonoranError as error:
                    failed = True
                    self._server_changed(server_id, type(error).__name__, str(error))
                    if isinstance(error, RateLimited):
                        delay = max(delay, error.retry_after)
                    continue
                self._server_changed(server_id, "ok", "")
            async with self._lock:
                for server_id, snapshot in snapshots:
                    for feed in self._feeds_of(server_id):
                        await self._take_snapshot(feed, snapshot.calls)
            if failed:
                self._failed_cycles += 1
                delay = max(delay, min(self.poll_seconds * 2**self._failed_cycles, self._backoff_cap))
            else:
                self._failed_cycles = 0
                await self._record_success()
            await self._update_presence()
            return delay

    async def _take_snapshot(self, feed: FeedSettings, calls: CallList) -> None:
        book = await self._book(feed)
        if calls is book.last_snapshot:  # the CAD sent the very same reply: nothing to plan
            await self._deliver(feed, book)  # what failed before is retried all the same
            return
        rules = rules_of(feed)
        wanted = revivals(book, calls, rules)
        if wanted:  # rare: a call whose post ended is listed again; its row comes back from disk
            book.open.update(await self.bot.store.posts(feed.channel_id, feed.server_id, wanted))
        store = self.bot.store
        plan = plan_snapshot(
            book,
            calls,
            rules,
            now=time.time(),
            removed_by=store.removals(feed.server_id),
            closed_by=store.closures(feed.server_id),
        )
        book.apply([*plan.updated, *(p for group in plan.new for p in group)], plan.seen)
        if plan:
            await self._store(feed, book, plan.updated, [p.key for group in plan.new for p in group])
        book.last_snapshot = calls
        await self._deliver(feed, book)

    # --- push events -------------------------------------------------------------------------------
    def _queue_events(self, server_id: ServerId, events: list[Event]) -> None:
        self._events.put_nowait((server_id, events))

    async def _take_events(self) -> None:
        while True:
            taken = [await self._events.get()]
            while not self._events.empty():  # a burst is planned, stored and posted together
                taken.append(self._events.get_nowait())
            try:
                await self.handle_events(taken)
            except Exception:  # a bug must not end the worker; the poll repairs what it missed
                log.exception("feed: events failed")
            finally:
                for _ in taken:
                    self._events.task_done()

    async def events_settled(self) -> None:
        """Returns once every event queued so far is planned, stored and delivered (or failed)."""
        await self._events.join()

    async def handle_events(self, taken: Iterable[tuple[ServerId, list[Event]]]) -> None:
        """Plans, stores and delivers push events, in the order they came. A burst is planned event
        by event against the book, then stored at once, so that its new calls share messages."""
        self._last_event_at = time.monotonic()
        async with self._lock:
            touched: dict[tuple[int, ServerId], FeedSettings] = {}
            changed: dict[tuple[int, ServerId], dict[PostKey, Post]] = {}  # stored posts, as they now are
            fresh: dict[tuple[int, ServerId], list[PostKey]] = {}  # new posts, in the order they came
            for server_id, events in taken:
                snapshot = self.bot.board.latest(server_id)
                answered = answered_911(snapshot.calls) if snapshot else set()
                removed_by = self.bot.store.removals(server_id)
                closed_by = self.bot.store.closures(server_id)
                for feed in self._feeds_of(server_id):
                    book = await self._book(feed)
                    for event in events:
                        plan = plan_event(
                            book,
                            event,
                            rules_of(feed),
                            now=time.time(),
                            removed_by=removed_by,
                            answered=answered,
                            closed_by=closed_by,
                        )
                        book.remember(event)
                        if plan:
                            key = (feed.channel_id, feed.server_id)
                            book.apply([*plan.updated, *(post for group in plan.new for post in group)], plan.seen)
                            book.last_snapshot = None  # the next poll compares in full
                            touched[key] = feed
                            changed.setdefault(key, {}).update((p.key, p) for p in plan.updated if p.batch)
                            fresh.setdefault(key, []).extend(p.key for group in plan.new for p in group)
            for key, feed in touched.items():
                await self._store(feed, self._books[key], list(changed.get(key, {}).values()), fresh.get(key, []))
            for key, feed in touched.items():
                await self._deliver(feed, self._books[key])

    async def call_state(
        self, channel_id: int, server_id: ServerId, kind: PostKind, call_id: CallId
    ) -> PostState | None:
        """How this channel shows the call: its post's state, or None when it never showed it."""
        feed = next((f for f in self._feeds_of(server_id) if f.channel_id == channel_id), None)
        if feed is None:
            return None
        # A loaded book is read as it stands (no await in between); the lock, which a delivery to
        # Discord may hold for seconds, is only taken to load it, so a click never waits on a post.
        book = self._books.get((feed.channel_id, feed.server_id))
        if book is None:
            async with self._lock:
                book = await self._book(feed)
        post = book.open.get((kind, call_id))
        if post is not None:
            return post.state
        if (kind, call_id) not in book.known:
            return None
        return PostState.CLOSED if kind is PostKind.DISPATCH else PostState.REMOVED  # ended, and shown so

    # --- the book, the store, Discord ------------------------------------------------------------
    def _feeds_of(self, server_id: ServerId) -> list[FeedSettings]:
        return [feed for feed in self.settings.feeds if feed.server_id == server_id]

    async def _book(self, feed: FeedSettings) -> Book:
        key = (feed.channel_id, feed.server_id)
        book = self._books.get(key)
        if book is None:  # once per channel after start (and after pruning)
            store = self.bot.store
            book = Book(
                open=await store.open_posts(feed.channel_id, feed.server_id),
                known=await store.known_keys(feed.channel_id, feed.server_id),
            )
            self._books[key] = book
        return book

    async def _store(self, feed: FeedSettings, book: Book, changed: list[Post], fresh: list[PostKey]) -> None:
        """What the book took in, written before anything is sent: posts already stored, as they now
        are (`changed`), and the new ones (`fresh`, as the book now holds them), batched by
        `message_group` in the order they came. If the write fails, the book, which ran ahead of
        the store, is dropped and reloaded from the store when next needed."""
        groups: dict[tuple[PostKind, bool], list[Post]] = {}
        for key in fresh:
            post = book.open[key]
            groups.setdefault(message_group(post), []).append(post)
        new = [post for group in groups.values() for post in batches(group)]
        try:
            await self.bot.store.update(changed)
            await self.bot.store.add_batch(new)
        except BaseException:
            self._books.pop((feed.channel_id, feed.server_id), None)
            raise
        book.apply(new)

    async def _deliver(self, feed: FeedSettings, book: Book) -> None:
        for posts in unsent_posts(book).values():
            sent = await self.sender.send(feed, posts)
            if sent is None:
                return  # the channel is failing; the rest waits for the next cycle
            book.apply(sent)
        for batch in stale_batches(book):
            edited = await self.sender.edit(feed, await self.bot.store.batch(batch))
            if edited is None:
                return
            book.apply(edited)

    # --- state changes, presence, health ---------------------------------------------------------
    def _server_changed(self, server_id: int, state: str, detail: str) -> None:
        if self._server_state.change(server_id, state) is None:
            return
        if state == "ok":
            log.info("feed: CAD server %s answers again", server_id)
        else:
            log.warning("feed: CAD server %s: %s (%s); backing off and retrying", server_id, state, detail)

    async def _record_success(self) -> None:
        now = time.time()
        health = self.settings.state.health_file
        if health is not None:
            try:
                await asyncio.to_thread(_touch, health, now)
            except OSError as error:  # the feed goes on; `health` will report it stale
                if self._health_state.change(0, "failing"):
                    log.error(
                        "feed: cannot write state.health_file %s (%s); the feed goes on without it", health, error
                    )
            else:
                if self._health_state.change(0, "ok"):
                    log.info("feed: state.health_file %s is written again", health)
        if now - self._last_prune > PRUNE_EVERY:
            self._last_prune = now
            async with self._lock:
                if await self.bot.store.forget_ended(now - KEEP_ENDED_SECONDS):
                    self._books.clear()  # reloaded from the store as needed

    async def _update_presence(self) -> None:
        if not self.bot.is_ready() or self.bot.is_closed():
            return  # no gateway (yet): presence is a gateway message
        count = self.bot.board.active_count()
        if count == self._presence_count:
            return
        activity = discord.Activity(type=discord.ActivityType.watching, name=f"{count} active call(s)")
        try:
            await self.bot.change_presence(activity=activity)
        except (discord.ConnectionClosed, ConnectionError) as error:  # reconnecting: try next cycle
            log.debug("feed: presence not updated: %s", error)
            return
        self._presence_count = count


def _touch(path: Path, now: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{now:.0f}\n")


async def setup(bot: DispatchBot) -> None:
    await bot.add_cog(Feed(bot))

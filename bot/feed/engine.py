"""The feed engine: keeps one channel message per batch of calls, posted once and edited in place
as the calls are answered, removed or closed.

Two ways in, one logic:
- the poll (`cycle`, every `sonoran.poll_seconds`): one GET_CALLS per CAD server that a `[[feeds]]`
  entry names, through the call board (which `/calls` and autocomplete then reuse);
- push events (`push.enabled`): intake (`bot.intake`) hands them to `take_events`, and its
  listener answers 200 only once they are planned and stored. The engine opens no port.

Both go through the pure planner (`bot.feed.planner`) against each channel's `Book` (the open
posts, kept in memory in step with the store), under one lock that covers planning and storing
only: nothing under it waits on Discord. What was stored is then delivered by the channel's own
writer (`bot.delivery.outbox`). While events arrive, the poll slows to `push.poll_seconds_when_live`;
it never stops, because Sonoran sends no events for changes made through its API, and events can
be lost.

Which 911 calls were answered is remembered per server from every poll and every dispatch event
(whatever the feeds post), so a 911 post ends "answered" whenever the bot saw the link, and a post
that ended "removed" before the link was known is relabelled when it comes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import discord

from ..backoff import Backoff
from ..callboard import Snapshot
from ..config import FeedSettings, Settings, polls_per_window
from ..db import DatabaseError
from ..delivery.channels import Channels
from ..delivery.outbox import ChannelWriter
from ..posts import Post, PostKey, PostKind, PostState, shown_state
from ..sonoran import CallId, CallList, DispatchCall, RateLimited, ServerId, SonoranError
from ..sonoran.events import DispatchChanged, DispatchClosed, Event, UnitEvent, UnitsMoved
from ..statechanges import Once, StateChanges
from ..tasks import cancel_and_wait
from .lane import CallsLane
from .planner import (
    Book,
    FeedRules,
    MessageGroup,
    Plan,
    answered_911,
    plan_event,
    plan_snapshot,
    relabels,
    revivals,
)
from .sender import Sender, batches

if TYPE_CHECKING:
    from ..community import Community
    from ..units.engine import UnitsEngine

log = logging.getLogger("bot.feed")

MIN_BACKOFF_CAP = 60.0  # the first call filed after the CAD recovers is posted within max(poll_seconds, this)
KEEP_ENDED_SECONDS = 7 * 24 * 3600
PRUNE_EVERY = 3600.0
LIVE_WINDOWS = 2  # events within this many `poll_seconds_when_live` make the feed "live"
DRAIN_SECONDS = 3.0  # at a stop, what is stored may still be delivered for this long
HEARTBEAT_SECONDS = 60.0  # the health file is stamped at least this often while the loop lives
ANSWERED_MEMORY = 10_000  # per server: 911 calls known to have been answered
# a row the database or JSON will not take
STORE_FAULTS: tuple[type[Exception], ...] = (*DatabaseError, OverflowError, ValueError, TypeError)

ChannelKey: TypeAlias = tuple[int, ServerId]


class EngineStopped(Exception):
    """Events handed to an engine that is stopping (a community rebuilt or removed): not stored,
    so the listener answers 503 and the sender sends them again."""


_Write: TypeAlias = Callable[[Sequence[Post]], Awaitable[None]]


@dataclass
class _Work:
    """One channel's share of a plan, to store: posts changed, new posts' keys, and the poll's list
    it came from (None for events)."""

    feed: FeedSettings
    changed: list[Post]
    fresh: dict[MessageGroup, list[PostKey]]  # new posts by the rule that groups them, in the order they came
    snapshot: CallList | None = None


def rules_of(feed: FeedSettings) -> FeedRules:
    return FeedRules(
        channel_id=feed.channel_id,
        server_id=feed.server_id,
        emergency="emergency" in feed.calls,
        civil="civil" in feed.calls,
        dispatch=feed.dispatch,
        ping=bool(feed.ping_role_id),
    )


def takes_event(settings: Settings, server_id: ServerId, event: Event) -> bool:
    """Does a feed, a unit board or a panic alert of this server take this event."""
    if isinstance(event, UnitEvent):
        return server_id in settings.unit_server_ids
    if isinstance(event, (UnitsMoved, DispatchClosed)):  # calls and their units: feed posts and boards
        return server_id in settings.event_server_ids
    return server_id in settings.feed_server_ids


class FeedEngine:
    """Posts new CAD calls to the configured channels and keeps those posts up to date."""

    def __init__(self, community: Community, channels: Channels, units: UnitsEngine) -> None:
        """`channels`: where the posts are delivered (the community's, shared with `units`, the
        boards and panic alerts, which this engine drives: their events come with the calls')."""
        self.community = community
        self.channels = channels
        self.settings = community.settings
        self.poll_seconds = community.settings.cad.poll_seconds
        self._cycle = asyncio.Lock()  # one poll cycle at a time
        self._lock = asyncio.Lock()  # the books and the store: planning and storing, never Discord
        self._task: asyncio.Task[None] | None = None
        self._books: dict[ChannelKey, Book] = {}
        self._lanes: dict[ChannelKey, CallsLane] = {}
        self._answered: dict[ServerId, dict[CallId, None]] = {}
        self._links_from: dict[ServerId, CallList] = {}  # the call list each server's links were last read from
        self._incoming: list[tuple[ServerId, list[Event], asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._halted = asyncio.Event()
        self._closed = False  # stopped: takes no more events
        self.cycles = 0  # poll cycles completed (hosted mode's health waits for each community's first)
        self._last_event_at: float | None = None
        self._server_state = StateChanges()
        self._health_state = StateChanges()
        self._skipped = Once()
        self._poll_backoff = Backoff(first=2 * self.poll_seconds, cap=self._backoff_cap)
        self._presence_count: int | None = None
        self._last_prune = 0.0
        self._sender: Sender | None = None
        self.units = units

    def __repr__(self) -> str:
        return f"FeedEngine(feeds={len(self.settings.feeds)}, live={self.live})"

    @property
    def sender(self) -> Sender:
        if self._sender is None:  # on first use: a bot that only syncs commands has no store
            self._sender = Sender(
                self.channels,
                self.community.store,
                attach_buttons=self.settings.cad.api_version == 2,
                unit_names=self.unit_name,
            )
        return self._sender

    def dispatch_call(self, server_id: ServerId, call_id: CallId) -> DispatchCall | None:
        """A dispatch call as the feed last saw it, pushed or polled (a panic alert names its call
        before the next poll brings it), or None where no feed shows it."""
        for (_, feed_server), book in self._books.items():
            post = book.open.get((PostKind.DISPATCH, call_id)) if feed_server == server_id else None
            if post is not None and isinstance(post.call, DispatchCall):
                return post.call
        return None

    def unit_name(self, server_id: int, ident: int) -> str | None:
        """What the cards call an attached unit: its number and name from the units roster (read
        only where a board or an alert reads the server's units), else None."""
        roster = self.units.rosters.get(server_id)
        unit = roster.units.get(ident) if roster is not None else None
        if unit is None:
            return None
        return " ".join(part for part in (unit.data.unit_num, unit.data.name) if part) or None

    # --- start and stop --------------------------------------------------------------------------
    async def start(self, *, poll: bool) -> None:
        """Starts every feed channel's writer, the units engine, and with `poll` the poll loop.
        Push events come from intake (`bot.intake`), which the bot starts."""
        if self.community.services.store is not None:
            for feed in self.settings.feeds:
                self._writer(feed)  # started: what a crash left unsent goes out now
        await self.units.start(poll=poll)
        if poll:
            self.start_polling()

    def start_polling(self) -> None:
        """Starts the loop (once). It runs even with no feeds: each cycle then only refreshes the
        health file."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="feed-loop")

    async def stop(self, drain: float = DRAIN_SECONDS) -> None:
        """`drain`: how long what is stored may still be delivered (0: nothing more is sent once
        this returns). The writers stop whatever happens meanwhile (a cancellation included)."""
        self._closed = True  # a push from now on is answered 503, to be sent again (to what replaces it)
        try:
            await self.units.stop()
            if drain > 0 and not self._halted.is_set():
                self.units.hurry_boards()  # delivered in the drain below, with what else is stored
            for task in (self._committer, self._task):
                await cancel_and_wait(task)
            self._committer = self._task = None
            # a clean stop delivers what is stored, if Discord lets it within moments (and `halt`
            # does not cut it short); the rest is delivered at the next start (it is stored)
            if drain > 0 and not self._halted.is_set():
                settled = asyncio.ensure_future(self.settled())
                halted = asyncio.ensure_future(self._halted.wait())
                try:
                    await asyncio.wait({settled, halted}, timeout=drain, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    settled.cancel()
                    halted.cancel()
        finally:
            await self.channels.stop()

    async def halt(self) -> None:
        """Stops now, nothing more delivered, and cuts short a stop that is still delivering (this
        process lost the community's lease: another may start as soon as it ends)."""
        self._halted.set()
        await self.stop(drain=0.0)

    def _writer(self, feed: FeedSettings) -> ChannelWriter:
        """The feed's channel's writer, with the feed's call posts among its lanes."""
        writer = self.channels.writer(feed.channel_id)
        key = (feed.channel_id, feed.server_id)
        if key not in self._lanes:
            self._lanes[key] = CallsLane(feed, self._book, self.sender, self.community.store)
            writer.add(self._lanes[key])
        return writer

    async def settled(self) -> None:
        """Returns once every channel has tried everything due (sent it, or failed and waits)."""
        while self._committer is not None and not self._committer.done():
            await asyncio.wait({self._committer})
        await self.channels.settled()

    # --- the poll ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        log.info("feed: polling %d CAD server(s) every %gs", len(self.settings.feed_server_ids), self.poll_seconds)
        while True:
            try:
                delay = await self.cycle()
            except Exception:  # a bug must not end the feed; say so once per cycle and carry on
                log.exception("feed: cycle failed")
                delay = self._backoff_cap
            await self._rest(delay)

    async def _rest(self, delay: float) -> None:
        """Waits `delay`, stamping the health file at least every HEARTBEAT_SECONDS meanwhile: the
        loop being alive is the container's health, whatever the CAD's state (a restart fixes no
        Sonoran outage)."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, HEARTBEAT_SECONDS))
            if deadline - time.monotonic() > 0:
                await self._stamp_health()

    @property
    def _backoff_cap(self) -> float:
        return max(self.poll_seconds, MIN_BACKOFF_CAP)

    @property
    def polling(self) -> bool:
        """The poll loop is running (started with `poll`, not yet stopped)."""
        return self._task is not None and not self._task.done()

    @property
    def live(self) -> bool:
        """Events arrived recently: the poll only reconciles, at `push.poll_seconds_when_live`."""
        window = LIVE_WINDOWS * self.settings.push.poll_seconds_when_live
        return self._last_event_at is not None and time.monotonic() - self._last_event_at < window

    @property
    def interval(self) -> float:
        return max(self.poll_seconds, self.settings.push.poll_seconds_when_live) if self.live else self.poll_seconds

    async def poll_once(self) -> float:
        """One poll cycle, then its delivery: what `cycle` stored has been tried in every channel
        when this returns (for `once`-style callers, tests and benchmarks)."""
        delay = await self.cycle()
        await self.settled()
        return delay

    async def cycle(self) -> float:
        """Polls every feed's server, plans and stores what changed, and wakes the channels' writers
        (which also retry at once what failed); returns the wait before the next cycle."""
        async with self._cycle:
            delay = self.interval
            # the call-list slots the feed's polls need; members may use the rest (the budget rule)
            self.community.board.feed_reserve = polls_per_window(delay, len(self.settings.feed_server_ids))
            failed = False
            snapshots: list[tuple[ServerId, Snapshot]] = []
            for server_id in self.settings.feed_server_ids:
                try:
                    # one request a cycle: retrying at once would spend the minute's budget on a
                    # CAD that is failing and lock the next polls out; the next cycle is the retry
                    snapshots.append((server_id, await self.community.board.refresh(server_id, retry=False)))
                except SonoranError as error:
                    failed = True
                    self._server_changed(server_id, type(error).__name__, str(error))
                    if isinstance(error, RateLimited):
                        delay = max(delay, error.retry_after)
                    continue
                self._server_changed(server_id, "ok", "")
            async with self._lock:
                work: list[_Work] = []
                for server_id, snapshot in snapshots:
                    self._remember_links(server_id, snapshot.calls)
                    for feed in self._feeds_of(server_id):
                        planned = await self._plan_snapshot(feed, snapshot.calls)
                        if planned is not None:
                            work.append(planned)
                await self._store_all(work)
            await self.units.calls_read(server_id for server_id, _ in snapshots)  # alerts show their calls
            self.channels.wake_all(retry=True)
            if failed:
                delay = max(delay, self._poll_backoff.failed())
            else:
                self._poll_backoff.succeeded()
            await self._stamp_health()
            self.cycles += 1
            if not failed:
                await self._prune()
            await self._update_presence()
            return delay

    async def _plan_snapshot(self, feed: FeedSettings, calls: CallList) -> _Work | None:
        """Plans a poll's list for one channel; what to store, or None when nothing changed."""
        book = await self._book(feed)
        if calls is book.last_snapshot:  # the CAD sent the very same reply: nothing to plan
            return None
        rules = rules_of(feed)
        answered = self._answered.get(feed.server_id, {})
        wanted = [*revivals(book, calls, rules), *relabels(book, answered.keys())]
        if wanted:  # rare: ended posts that change again; their rows come back from disk
            book.open.update(await self.community.store.posts(feed.channel_id, feed.server_id, wanted))
        store = self.community.store
        plan = plan_snapshot(
            book,
            calls,
            rules,
            now=time.time(),
            removed_by=store.removals(feed.server_id),
            closed_by=store.closures(feed.server_id),
            answered=answered.keys(),
        )
        self._log_skipped(feed, plan)
        book.apply([*plan.updated, *plan.new_posts], plan.seen)
        if not plan:
            book.last_snapshot = calls
            return None
        return _Work(feed, plan.updated, {group: [p.key for p in posts] for group, posts in plan.new.items()}, calls)

    # --- push events -------------------------------------------------------------------------------
    async def take_events(self, server_id: ServerId, events: list[Event]) -> None:
        """Plans and stores push events; returns once they are stored (the listener's 200 waits for
        this), and raises when they could not be. Requests that arrive together are planned and
        stored together (one commit), so that a burst's new calls share messages."""
        if self._closed:
            raise EngineStopped("the feed engine is stopping; the events were not stored")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._incoming.append((server_id, events, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_incoming(), name="feed-events")
        await asyncio.shield(done)

    async def _commit_incoming(self) -> None:
        taken: list[tuple[ServerId, list[Event], asyncio.Future[None]]] = []
        try:
            while self._incoming:
                taken, self._incoming = self._incoming, []
                burst = [(server_id, events) for server_id, events, _ in taken]
                try:
                    await self.handle_events(burst)
                    await self.units.handle_events(burst)
                except Exception as error:  # the store failed: nothing of this burst is acknowledged
                    log.exception("feed: events could not be stored")
                    _settle(taken, error)
                else:
                    _settle(taken, None)
        except asyncio.CancelledError:  # stopped: whoever waits is told to send them again
            _settle([*taken, *self._incoming], EngineStopped("the feed engine stopped; the events were not stored"))
            self._incoming = []
            raise

    async def handle_events(self, taken: Iterable[tuple[ServerId, list[Event]]]) -> None:
        """Plans and stores push events in the order they came, then wakes the channels' writers.
        A burst is planned event by event against the book, then stored at once, so that its new
        calls share messages. An event that fails to plan costs that event only."""
        self._last_event_at = time.monotonic()
        async with self._lock:
            touched: dict[ChannelKey, FeedSettings] = {}
            changed: dict[ChannelKey, dict[PostKey, Post]] = {}  # stored posts, as they now are
            fresh: dict[ChannelKey, dict[MessageGroup, list[PostKey]]] = {}  # new posts, in the order they came
            for server_id, events in taken:
                snapshot = self.community.board.latest(server_id)
                if snapshot is not None:  # a list fetched for a member since the last cycle counts too
                    self._remember_links(server_id, snapshot.calls)
                origins = set(_origins(events))
                self._remember_answered(server_id, origins)
                answered = self._answered.get(server_id, {}).keys()
                removed_by = self.community.store.removals(server_id)
                closed_by = self.community.store.closures(server_id)
                for feed in self._feeds_of(server_id):
                    key = (feed.channel_id, feed.server_id)
                    book = await self._book(feed)
                    wanted = relabels(book, origins)  # what this burst says was answered
                    if wanted:
                        book.open.update(await self.community.store.posts(feed.channel_id, feed.server_id, wanted))
                    for event in events:
                        try:
                            plan = plan_event(
                                book,
                                event,
                                rules_of(feed),
                                now=time.time(),
                                removed_by=removed_by,
                                answered=answered,
                                closed_by=closed_by,
                            )
                        except Exception as error:  # one event that cannot be planned costs that event only
                            if self._skipped.first((feed.channel_id, repr(event)[:200])):
                                log.warning("feed: channel %s: an event was left out (%r)", feed.channel_id, error)
                            continue
                        book.remember(event)
                        self._log_skipped(feed, plan)
                        if plan:
                            book.apply([*plan.updated, *plan.new_posts], plan.seen)
                            book.last_snapshot = None  # the next poll compares in full
                            touched[key] = feed
                            changed.setdefault(key, {}).update((p.key, p) for p in plan.updated if p.batch)
                            groups = fresh.setdefault(key, {})
                            for group, posts in plan.new.items():
                                groups.setdefault(group, []).extend(p.key for p in posts)
            await self._store_all(
                [_Work(feed, list(changed.get(key, {}).values()), fresh.get(key, {})) for key, feed in touched.items()]
            )
        for feed in touched.values():
            self._writer(feed).wake()

    def takes(self, server_id: ServerId, event: Event) -> bool:
        return takes_event(self.settings, server_id, event)

    async def call_state(
        self, channel_id: int, server_id: ServerId, kind: PostKind, call_id: CallId
    ) -> PostState | None:
        """How this channel shows the call: its post's state, or None when it never showed it."""
        feed = next((f for f in self._feeds_of(server_id) if f.channel_id == channel_id), None)
        if feed is None:
            return None
        # A loaded book is read as it stands (no await in between); the lock, which planning and
        # storing hold for moments and a delivery to Discord never holds, is only taken to load it.
        book = self._books.get((feed.channel_id, feed.server_id))
        if book is None:
            book = await self._book(feed)
        return shown_state(book.open, book.known, kind, call_id)

    # --- the books and the store -------------------------------------------------------------------
    def _feeds_of(self, server_id: ServerId) -> list[FeedSettings]:
        return [feed for feed in self.settings.feeds if feed.server_id == server_id]

    def _remember_links(self, server_id: ServerId, calls: CallList) -> None:
        """Remembers which 911 calls a call list shows answered, once per list (not once per burst)."""
        if calls is not self._links_from.get(server_id):
            self._links_from[server_id] = calls
            self._remember_answered(server_id, answered_911(calls))

    def _remember_answered(self, server_id: ServerId, call_ids: Iterable[CallId]) -> None:
        memory = self._answered.setdefault(server_id, {})
        for call_id in call_ids:
            memory.pop(call_id, None)
            memory[call_id] = None  # most recent last
        while len(memory) > ANSWERED_MEMORY:
            del memory[next(iter(memory))]

    async def _book(self, feed: FeedSettings) -> Book:
        key = (feed.channel_id, feed.server_id)
        book = self._books.get(key)
        if book is None:  # once per channel after start (and after pruning)
            store = self.community.store
            book = Book(
                open=await store.open_posts(feed.channel_id, feed.server_id),
                known=await store.known_keys(feed.channel_id, feed.server_id),
                unanswered=await store.unanswered_removals(feed.channel_id, feed.server_id),
            )
            book = self._books.setdefault(key, book)  # another task may have loaded it meanwhile
        return book

    async def _store_all(self, work: list[_Work]) -> None:
        """What the books took in, written before anything is sent, in one commit for every channel:
        posts already stored, as they now are (`changed`), and the new ones (`fresh`, as the book
        now holds them), batched by `message_group` in the order they came. A post the store will
        not take is left out by itself (logged once). The new posts join their books only once
        committed, so a writer never sends what is not stored; if the store itself fails, the books,
        which ran ahead of it, are dropped and reloaded from the store when next needed."""
        if not work:
            return
        stored: list[tuple[_Work, Book, list[Post]]] = []
        try:
            async with self.community.store.atomic():
                for item in work:
                    book = self._books[(item.feed.channel_id, item.feed.server_id)]
                    new = [post for keys in item.fresh.values() for post in batches([book.open[k] for k in keys])]
                    await self._write_each(item.feed, book, self.community.store.update, item.changed)
                    stored.append(
                        (item, book, await self._write_each(item.feed, book, self.community.store.add_batch, new))
                    )
        except BaseException:
            for item in work:
                self._books.pop((item.feed.channel_id, item.feed.server_id), None)
            raise
        for item, book, new in stored:
            book.apply(new)
            if item.snapshot is not None:
                book.last_snapshot = item.snapshot

    async def _write_each(self, feed: FeedSettings, book: Book, write: _Write, posts: list[Post]) -> list[Post]:
        """Writes the posts at once; when the store refuses them, one by one, leaving out those it
        refuses (they leave the book too, so nothing unstored is ever sent). Returns those stored."""
        try:
            await write(posts)
            return posts
        except STORE_FAULTS:
            if len(posts) == 1:
                raise
        stored: list[Post] = []
        for post in posts:
            try:
                await write([post])
                stored.append(post)
            except STORE_FAULTS as error:
                book.open.pop(post.key, None)
                book.known.discard(post.key)
                if self._skipped.first((feed.channel_id, post.key)):
                    log.warning(
                        "feed: channel %s: %s call #%s was left out: the store refused it (%r)",
                        feed.channel_id,
                        post.kind,
                        post.call_id,
                        error,
                    )
        return stored

    def _log_skipped(self, feed: FeedSettings, plan: Plan) -> None:
        for key, reason in plan.skipped:
            if self._skipped.first((feed.channel_id, key)):
                log.warning("feed: channel %s: %s call #%s was left out (%s)", feed.channel_id, *key, reason)

    # --- state changes, presence, health ---------------------------------------------------------
    def _server_changed(self, server_id: int, state: str, detail: str) -> None:
        if self._server_state.change(server_id, state) is None:
            return
        if state == "ok":
            log.info("feed: CAD server %s answers again", server_id)
        else:
            log.warning("feed: CAD server %s: %s (%s); backing off and retrying", server_id, state, detail)

    async def _stamp_health(self) -> None:
        """The health file: when the loop last ran, and the CAD's state then (`health` prints it)."""
        now = time.time()
        health = self.settings.state.health_file
        if health is not None:
            failing = self._server_state.failing()
            cad = "cad ok" if not failing else "cad failing: " + ", ".join(f"server {s}" for s in failing)
            try:
                await asyncio.to_thread(_touch, health, f"{now:.0f} {cad}")
            except OSError as error:  # the feed goes on; `health` will report it stale
                if self._health_state.change(0, "failing"):
                    log.error(
                        "feed: cannot write state.health_file %s (%s); the feed goes on without it", health, error
                    )
            else:
                if self._health_state.change(0, "ok"):
                    log.info("feed: state.health_file %s is written again", health)

    async def _prune(self) -> None:
        now = time.time()
        if now - self._last_prune > PRUNE_EVERY:
            self._last_prune = now
            async with self._lock:
                if await self.community.store.forget_ended(now - KEEP_ENDED_SECONDS):
                    self._books.clear()  # reloaded from the store as needed

    async def _update_presence(self) -> None:
        client = self.community.client
        if not self.community.shows_presence:  # hosted mode: the bot's one status is no community's
            return
        if not client.is_ready() or client.is_closed():
            return  # no gateway (yet): presence is a gateway message
        count = self.community.board.active_count()
        if count == self._presence_count:
            return
        activity = discord.Activity(type=discord.ActivityType.watching, name=f"{count} active call(s)")
        try:
            await client.change_presence(activity=activity)
        except (discord.ConnectionClosed, ConnectionError) as error:  # reconnecting: try next cycle
            log.debug("feed: presence not updated: %s", error)
            return
        self._presence_count = count


def _origins(events: Iterable[Event]) -> Iterator[CallId]:
    """The 911 calls that these events' dispatch calls were made from."""
    for event in events:
        if isinstance(event, DispatchChanged) and event.call.origin_911 is not None:
            yield event.call.origin_911


def _touch(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _settle(taken: Iterable[tuple[ServerId, list[Event], asyncio.Future[None]]], error: BaseException | None) -> None:
    for *_, done in taken:
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

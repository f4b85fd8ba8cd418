"""The call feed: polls each CAD server's call list and keeps one channel message per batch of
calls, posted once and edited in place as the calls are answered, removed or closed.

One cycle (`poll_once`), for every CAD server that a `[[feeds]]` entry names:
1. one GET_CALLS (through the call board, which `/calls` and autocomplete then reuse);
2. for each feed of that server: store what changed in calls already posted; record new calls
   as "being posted" (batches of up to 10 embeds and 6,000 characters, each with a fixed nonce)
   *before* sending; send every batch not yet confirmed; edit every message whose calls changed.
A batch that failed for a passing reason (429, 5xx, network, a missing permission) stays
unconfirmed and is sent again next cycle; nothing is lost. A batch Discord refuses for good (400,
413) is split, and a single call it still refuses is posted as a short stand-in, so that one
poisoned call never holds up the channel. After every send, what the message really shows is
recorded (Discord hands back the first message for a nonce it has seen), and edited if it differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import discord
from discord.ext import commands

from bot.config import FeedSettings
from bot.core import DispatchBot
from bot.embeds import (
    EMBED_TOTAL_LIMIT,
    dispatch_embed,
    embed_fingerprint,
    embed_size,
    emergency_embed,
    fit_embeds,
    from_unix,
    unavailable_embed,
)
from bot.permissions import FEED_PERMISSIONS, missing_feed_permissions
from bot.sonoran import CallList, DispatchCall, EmergencyCall, RateLimited, SonoranError
from bot.store import Post

log = logging.getLogger(__name__)

EMBEDS_PER_MESSAGE = 10
MIN_BACKOFF_CAP = 60.0  # the first call filed after the CAD recovers is posted within max(poll_seconds, this)
ENDED_STATES = frozenset({"answered", "removed", "closed"})
REFUSED_FOR_GOOD = frozenset({400, 413})  # retrying the same body cannot help
KEEP_ENDED_SECONDS = 7 * 24 * 3600
PRUNE_EVERY = 3600.0
NO_PINGS = discord.AllowedMentions.none()
DISCORD_FAULTS = (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def content_version(state: str, data: dict[str, Any]) -> str:
    """What a post shows, as a short hash: equal versions need no edit."""
    return hashlib.sha1(json.dumps([state, data], sort_keys=True).encode()).hexdigest()[:16]


def _nonce(channel_id: int, server_id: int, kind: str, call_ids: Sequence[int]) -> str:
    # Discord keeps nonces up to 25 characters; the same batch always gets the same nonce.
    text = f"{channel_id}|{server_id}|{kind}|{','.join(map(str, call_ids))}"
    return hashlib.sha1(text.encode()).hexdigest()[:25]


def _batches(posts: Sequence[Post]) -> Iterable[list[Post]]:
    """Consecutive runs of at most 10 posts whose embeds fit one message's 6,000 characters."""
    batch: list[Post] = []
    size = 0
    for post in posts:
        cost = embed_size(render(post))
        if batch and (len(batch) == EMBEDS_PER_MESSAGE or size + cost > EMBED_TOTAL_LIMIT):
            yield batch
            batch, size = [], 0
        batch.append(post)
        size += cost
    if batch:
        yield batch


def _as_batch(posts: Sequence[Post]) -> list[Post]:
    """The posts as one batch: its nonce (from its calls) and their positions in it."""
    first = posts[0]
    batch = _nonce(first.channel_id, first.server_id, first.kind, [p.call_id for p in posts])
    return [replace(post, batch=batch, position=index) for index, post in enumerate(posts)]


def stand_in(post: Post) -> discord.Embed:
    kind = "911 call" if post.kind == "911" else "Dispatch call"
    ended = post.state != "active"
    return unavailable_embed(title=f"{kind} #{post.call_id}" + (f" ({post.state})" if ended else ""), ended=ended)


class StateChanges:
    """The last known state of each server or channel, so that the log gets one line per change
    rather than one per poll. Starting out "ok" is not a change worth a line."""

    def __init__(self) -> None:
        self._states: dict[int, str] = {}

    def change(self, key: int, state: str) -> str | None:
        """Records `state`; returns it when that is news, else None."""
        previous = self._states.get(key, "ok")
        self._states[key] = state
        return state if state != previous else None


def render(post: Post) -> discord.Embed:
    first_seen = from_unix(post.first_seen)
    ended = from_unix(post.ended_at) if post.ended_at else None
    if post.kind == "911":
        return emergency_embed(
            EmergencyCall.model_validate(post.data["call"]),
            server_id=post.server_id,
            first_seen=first_seen,
            state=post.state if post.state in ("answered", "removed") else "active",
            ended_at=ended,
            removed_by=post.data.get("removed_by"),
        )
    return dispatch_embed(
        DispatchCall.model_validate(post.data["call"]),
        server_id=post.server_id,
        first_seen=first_seen,
        closed=post.state == "closed",
        ended_at=ended,
    )


class Feed(commands.Cog):
    """Posts new CAD calls to the configured channels and keeps those posts up to date."""

    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot
        self.settings = bot.settings
        self.poll_seconds = bot.settings.sonoran.poll_seconds
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._server_state = StateChanges()
        self._channel_state = StateChanges()
        self._health_state = StateChanges()
        self._failed_cycles = 0
        self._presence_count: int | None = None
        self._last_prune = 0.0

    async def cog_load(self) -> None:
        if self.bot.autostart_feed:
            self.start()

    def start(self) -> None:
        """Starts the loop (once). It runs even with no feeds: each cycle then only refreshes the
        health file."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="feed-loop")

    async def cog_unload(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

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

    async def poll_once(self) -> float:
        """Runs one poll-and-post cycle over every feed; returns the wait before the next one."""
        async with self._lock:
            delay = self.poll_seconds
            failed = False
            for server_id in self.settings.feed_server_ids:
                try:
                    # one request a cycle: retrying at once would spend the minute's budget on a
                    # CAD that is failing and lock the next polls out; the next cycle is the retry
                    snapshot = await self.bot.board.refresh(server_id, retry=False)
                except SonoranError as error:
                    failed = True
                    self._server_changed(server_id, type(error).__name__, str(error))
                    if isinstance(error, RateLimited):
                        delay = max(delay, error.retry_after)
                    continue
                self._server_changed(server_id, "ok", "")
                for feed in self.settings.feeds:
                    if feed.server_id == server_id:
                        await self._sync_channel(feed, snapshot.calls)
            if failed:
                self._failed_cycles += 1
                delay = max(delay, min(self.poll_seconds * 2**self._failed_cycles, self._backoff_cap))
            else:
                self._failed_cycles = 0
                await self._record_success()
            await self._update_presence()
            return delay

    # --- one channel -----------------------------------------------------------------------------
    async def _sync_channel(self, feed: FeedSettings, calls: CallList) -> None:
        store = self.bot.store
        now = time.time()
        posts = await store.open_posts(feed.channel_id, feed.server_id)
        listed = {
            "911": [c.call_id for c in calls.emergency],
            "dispatch": [c.call_id for c in calls.active] if feed.dispatch else [],
        }
        known = {kind: await store.known(feed.channel_id, feed.server_id, kind, ids) for kind, ids in listed.items()}
        # calls whose posts ended (and show it) but that the CAD lists again: they come back to life
        revived = [(kind, call_id) for kind, ids in known.items() for call_id in ids if (kind, call_id) not in posts]
        if revived:
            posts.update(await store.posts(feed.channel_id, feed.server_id, revived))
        changed = await self._changes(posts.values(), calls, now)
        await store.update(changed)
        new = self._new_posts(feed, calls, known, now)
        await store.add_batch(new)
        # what open_posts() would now return: changed rows stay open (version != shown), new ones are unsent
        posts.update((post.key, post) for post in (*changed, *new))

        unsent = sorted(
            {p.batch: p.first_seen for p in posts.values() if p.message_id is None}.items(), key=lambda item: item[1]
        )
        for batch, _ in unsent:
            sent = await self._send(feed, await store.batch(batch))
            if sent is None:
                return  # the channel is failing; the rest waits for the next cycle
            posts.update((post.key, post) for post in sent)
        stale = {p.batch for p in posts.values() if p.message_id is not None and p.version != p.shown}
        for batch in sorted(stale):
            if not await self._edit(feed, await store.batch(batch)):
                return

    async def _changes(self, posts: Iterable[Post], calls: CallList, now: float) -> list[Post]:
        emergency = {c.call_id: c for c in calls.emergency}
        active = {c.call_id: c for c in calls.active}
        closed = {c.call_id: c for c in calls.closed}
        answered = {c.origin_911 for c in (*calls.active, *calls.closed) if c.origin_911 is not None}
        changed = []
        for post in posts:
            listed = emergency if post.kind == "911" else active
            if post.state == "deleted" or (post.state in ENDED_STATES and post.call_id not in listed):
                continue  # deleted by a moderator, or ended and still ended: final
            data: dict[str, Any] = dict(post.data)
            state, ended_at = "active", None
            if post.kind == "911":
                current_911 = emergency.get(post.call_id)
                if current_911 is not None:
                    data["call"] = current_911.model_dump(by_alias=True, mode="json")
                    data.pop("removed_by", None)
                else:
                    ended_at = now
                    removed_by = await self.bot.store.removed_by(post.server_id, post.call_id)
                    if removed_by:
                        state, data["removed_by"] = "removed", removed_by
                    else:
                        state = "answered" if post.call_id in answered else "removed"
            else:
                current = active.get(post.call_id)
                if current is None:
                    state, ended_at = "closed", now
                    current = closed.get(post.call_id)
                if current is not None:
                    data["call"] = current.model_dump(by_alias=True, mode="json")
            version = content_version(state, data)
            if version != post.version:
                changed.append(replace(post, state=state, data=data, version=version, ended_at=ended_at))
        return changed

    def _new_posts(self, feed: FeedSettings, calls: CallList, known: dict[str, set[int]], now: float) -> list[Post]:
        def fresh(kind: str, call: EmergencyCall | DispatchCall) -> bool:
            return call.call_id not in known[kind]

        # Emergency calls go in their own messages, so the role ping comes only with them.
        groups: list[tuple[str, bool, list[EmergencyCall] | list[DispatchCall]]] = [
            ("911", True, [c for c in calls.emergency if c.is_emergency and fresh("911", c)]),
            ("911", False, [c for c in calls.emergency if not c.is_emergency and fresh("911", c)]),
        ]
        if feed.dispatch:
            groups.append(("dispatch", False, [c for c in calls.active if fresh("dispatch", c)]))
        out: list[Post] = []
        for kind, is_emergency, group in groups:
            if kind == "911" and ("emergency" if is_emergency else "civil") not in feed.calls:
                continue
            posts = []
            for call in group:
                data = {"call": call.model_dump(by_alias=True, mode="json")}
                posts.append(
                    Post(
                        channel_id=feed.channel_id,
                        server_id=feed.server_id,
                        kind=kind,
                        call_id=call.call_id,
                        batch="",
                        position=0,
                        message_id=None,
                        state="active",
                        data=data,
                        version=content_version("active", data),
                        shown=None,
                        first_seen=now,
                        ended_at=None,
                        ping=is_emergency and bool(feed.ping_role_id),
                    )
                )
            for batch in _batches(posts):
                out.extend(_as_batch(batch))
        return out

    # --- Discord ---------------------------------------------------------------------------------
    async def _post_message(
        self, feed: FeedSettings, posts: list[Post], embeds: list[discord.Embed]
    ) -> discord.Message:
        channel = self.bot.get_partial_messageable(feed.channel_id)
        ping = feed.ping_role_id and any(p.ping for p in posts)
        return await channel.send(
            content=f"<@&{feed.ping_role_id}> new emergency call" if ping else None,
            embeds=embeds,
            nonce=posts[0].batch,
            allowed_mentions=(
                discord.AllowedMentions(everyone=False, users=False, roles=[discord.Object(feed.ping_role_id)])
                if ping
                else discord.AllowedMentions.none()
            ),
        )

    async def _send(self, feed: FeedSettings, posts: list[Post]) -> list[Post] | None:
        """Posts one batch; returns its posts as now recorded, or None while the channel is failing."""
        embeds = fit_embeds([render(p) for p in posts])
        try:
            message = await self._post_message(feed, posts, embeds)
        except DISCORD_FAULTS as error:
            if isinstance(error, discord.HTTPException) and error.status in REFUSED_FOR_GOOD:
                return await self._send_refused(feed, posts, error)
            self._channel_changed(feed.channel_id, self._describe(feed.channel_id, error, "post"))
            return None
        # With a nonce Discord has seen, the reply is the message it made then, showing what that
        # attempt rendered (a crash or a 5xx came between): record what it shows, not what we sent.
        showing = [embed_fingerprint(e) for e in message.embeds]
        shown = {
            p.key: p.version if index < len(showing) and showing[index] == embed_fingerprint(sent) else None
            for index, (p, sent) in enumerate(zip(posts, embeds, strict=True))
        }
        await self.bot.store.mark_sent(posts[0].batch, message.id, shown)
        self._channel_changed(feed.channel_id, "ok")
        return [replace(p, message_id=message.id, shown=shown[p.key]) for p in posts]

    async def _send_refused(
        self, feed: FeedSettings, posts: list[Post], error: discord.HTTPException
    ) -> list[Post] | None:
        """Discord will never take this batch as it is: post it in halves, down to single calls,
        and a single call it still refuses as a short stand-in."""
        if len(posts) > 1:
            log.warning(
                "feed: channel %s refused a batch of %d calls (HTTP %s: %s); posting it in parts",
                feed.channel_id,
                len(posts),
                error.status,
                error.text[:200],
            )
            out: list[Post] = []
            half = len(posts) // 2
            for part in (posts[:half], posts[half:]):
                part = _as_batch(part)
                await self.bot.store.rebatch(part)
                sent = await self._send(feed, part)
                if sent is None:
                    return None
                out.extend(sent)
            return out
        (post,) = posts
        log.warning(
            "feed: channel %s refused %s call #%s (HTTP %s: %s); posting a short stand-in instead",
            feed.channel_id,
            post.kind,
            post.call_id,
            error.status,
            error.text[:200],
        )
        try:
            message = await self._post_message(feed, posts, [stand_in(post)])
        except DISCORD_FAULTS as again:
            self._channel_changed(feed.channel_id, self._describe(feed.channel_id, again, "post"))
            return None
        await self.bot.store.mark_sent(post.batch, message.id, {post.key: post.version})
        return [replace(post, message_id=message.id, shown=post.version)]

    async def _edit(self, feed: FeedSettings, posts: list[Post]) -> bool:
        message_id = posts[0].message_id
        assert message_id is not None
        message = self.bot.get_partial_messageable(feed.channel_id).get_partial_message(message_id)
        try:
            try:
                await message.edit(embeds=fit_embeds([render(p) for p in posts]), allowed_mentions=NO_PINGS)
            except discord.HTTPException as error:
                if error.status not in REFUSED_FOR_GOOD:
                    raise
                log.warning(
                    "feed: channel %s refused the edit of message %s (HTTP %s: %s); showing short stand-ins",
                    feed.channel_id,
                    message_id,
                    error.status,
                    error.text[:200],
                )
                await message.edit(embeds=[stand_in(p) for p in posts], allowed_mentions=NO_PINGS)
        except discord.NotFound:
            # Someone deleted the post on purpose: respect that, do not post those calls again.
            log.info("feed: message %s in channel %s was deleted; not editing it again", message_id, feed.channel_id)
            await self.bot.store.mark_deleted(posts[0].batch)
            return True
        except DISCORD_FAULTS as error:
            self._channel_changed(feed.channel_id, self._describe(feed.channel_id, error, "edit"))
            return False
        await self.bot.store.mark_shown(posts[0].batch, {p.key: p.version for p in posts})
        self._channel_changed(feed.channel_id, "ok")
        return True

    def _describe(self, channel_id: int, error: BaseException, action: str) -> str:
        if isinstance(error, discord.Forbidden):
            return f"cannot {action} there: missing permission {self._missing_permissions(channel_id)}"
        if isinstance(error, discord.NotFound):
            return f"cannot {action} there: the channel does not exist or the bot cannot see it"
        if isinstance(error, discord.HTTPException):
            return f"cannot {action} there: Discord answered HTTP {error.status} ({error.text[:100]})"
        return f"cannot {action} there: {type(error).__name__}"

    def _missing_permissions(self, channel_id: int) -> str:
        channel = self.bot.get_channel(channel_id)
        if isinstance(channel, discord.abc.GuildChannel):
            granted = channel.permissions_for(channel.guild.me)
            missing = missing_feed_permissions(granted)
            if missing:
                return ", ".join(missing)
        return "(one of " + ", ".join(name for _, name in FEED_PERMISSIONS) + ")"

    # --- state changes, presence, health ---------------------------------------------------------
    def _server_changed(self, server_id: int, state: str, detail: str) -> None:
        if self._server_state.change(server_id, state) is None:
            return
        if state == "ok":
            log.info("feed: CAD server %s answers again", server_id)
        else:
            log.warning("feed: CAD server %s: %s (%s); backing off and retrying", server_id, state, detail)

    def _channel_changed(self, channel_id: int, state: str) -> None:
        if self._channel_state.change(channel_id, state) is None:
            return
        if state == "ok":
            log.info("feed: channel %s works again; held calls are posted", channel_id)
        else:
            log.warning("feed: channel %s: %s; calls are kept and posted once it works", channel_id, state)

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
            await self.bot.store.forget_ended(now - KEEP_ENDED_SECONDS)

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

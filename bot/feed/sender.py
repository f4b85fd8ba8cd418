"""The feed's one way to Discord: renders posts, batches them by Discord's limits, sends and edits
their messages, and records in the store what each message really shows.

Every write is bounded: a 429 longer than the bot's `max_ratelimit_timeout`, or a Discord that
does not answer (discord.py retries a 5xx five times over 25 s) within `WRITE_TIMEOUT`, ends the
attempt with a `Fault`, and the channel's writer (`bot.delivery.outbox`) tries again later. A batch
that failed for a passing reason (429, 5xx, network, a missing permission) stays unconfirmed and
is sent again later; nothing is lost. A batch Discord refuses for good (400, 413) is split, and a
single call it still refuses, or one that cannot be rendered, is posted as a short stand-in, so
that one poisoned call never holds up the channel. After every send, what the message really shows is recorded
(Discord hands back the first message for a nonce it has seen), and edited if it differs.
"""

from __future__ import annotations

import collections
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import discord

from ..cards import card_view
from ..config import FeedSettings
from ..delivery.channels import Channels
from ..delivery.faults import DISCORD_FAULTS
from ..delivery.pings import NO_PINGS, pinging
from ..delivery.writes import REFUSED_FOR_GOOD, Fault, bounded
from ..embeds import (
    EMBED_TOTAL_LIMIT,
    dispatch_embed,
    embed_size,
    emergency_embed,
    fit_embeds,
    from_unix,
    shows_as_sent,
    unavailable_embed,
)
from ..posts import Post, PostKind, PostState
from ..sonoran import EmergencyCall
from ..statechanges import Once
from ..store import Store

log = logging.getLogger("bot.feed")

EMBEDS_PER_MESSAGE = 10
_render_failures = Once()


_rendered: collections.OrderedDict[tuple[object, ...], discord.Embed] = collections.OrderedDict()
RENDERED_KEPT = 1024  # embeds kept, so that a batch is sized from the very embeds it sends


UnitNames = Callable[[int, int], str | None]  # (server id, identifier) -> the unit's name, if known


def render(post: Post, unit_names: UnitNames | None = None) -> discord.Embed:
    """The post's embed, rendered once per version (sizing a batch and sending it share it; callers
    do not change it: `fit_embeds` works on copies). A call that cannot be rendered (whatever the
    CAD put in it) is a stand-in, logged once."""
    names = _names(post, unit_names)
    key = (
        post.channel_id,
        post.server_id,
        post.kind,
        post.call_id,
        post.version,
        post.first_seen,
        post.ended_at,
        names,
    )
    embed = _rendered.get(key)
    if embed is None:
        embed = _rendered[key] = _render_or_stand_in(post, names)
        while len(_rendered) > RENDERED_KEPT:
            _rendered.popitem(last=False)
    else:
        _rendered.move_to_end(key)
    return embed


def _names(post: Post, unit_names: UnitNames | None) -> tuple[str | None, ...]:
    if unit_names is None or isinstance(post.call, EmergencyCall):
        return ()
    try:
        return tuple(unit_names(post.server_id, ident) for ident in post.call.idents)
    except Exception:  # a name is a nicety: the card shows identifiers instead
        log.debug("feed: unit names of call #%s unavailable", post.call_id, exc_info=True)
        return ()


def _render_or_stand_in(post: Post, names: tuple[str | None, ...] = ()) -> discord.Embed:
    try:
        return _render(post, names)
    except Exception as error:
        if _render_failures.first((post.server_id, post.kind, post.call_id)):
            log.warning(
                "feed: %s call #%s of server %s cannot be shown (%r); posting a short stand-in",
                post.kind,
                post.call_id,
                post.server_id,
                error,
            )
        return stand_in(post)


def _render(post: Post, names: tuple[str | None, ...] = ()) -> discord.Embed:
    first_seen = from_unix(post.first_seen)
    ended = from_unix(post.ended_at) if post.ended_at else None
    if isinstance(post.call, EmergencyCall):
        return emergency_embed(
            post.call,
            server_id=post.server_id,
            first_seen=first_seen,
            state=post.state if post.state in (PostState.ANSWERED, PostState.REMOVED) else "active",
            ended_at=ended,
            removed_by=post.ended_by,
        )
    return dispatch_embed(
        post.call,
        server_id=post.server_id,
        first_seen=first_seen,
        closed=post.state is PostState.CLOSED,
        ended_at=ended,
        closed_by=post.ended_by,
        unit_names=names,
    )


def stand_in(post: Post) -> discord.Embed:
    kind = "911 call" if post.kind is PostKind.CALL_911 else "Dispatch call"
    ended = post.state is not PostState.ACTIVE
    return unavailable_embed(title=f"{kind} #{post.call_id}" + (f" ({post.state})" if ended else ""), ended=ended)


def batches(posts: Sequence[Post]) -> list[Post]:
    """The posts (one kind, one ping) in consecutive batches of at most 10 whose embeds fit one
    message's 6,000 characters, each with its nonce and positions."""
    out: list[Post] = []
    for batch in _runs(posts):
        out.extend(as_batch(batch))
    return out


def _runs(posts: Sequence[Post]) -> Iterable[list[Post]]:
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


def as_batch(posts: Sequence[Post]) -> list[Post]:
    """The posts as one batch: its nonce (from its calls) and their positions in it."""
    first = posts[0]
    batch = _nonce(first.channel_id, first.server_id, first.kind, [p.call_id for p in posts])
    return [replace(post, batch=batch, position=index) for index, post in enumerate(posts)]


def _nonce(channel_id: int, server_id: int, kind: str, call_ids: Sequence[int]) -> str:
    # Discord keeps nonces up to 25 characters; the same batch always gets the same nonce.
    text = f"{channel_id}|{server_id}|{kind}|{','.join(map(str, call_ids))}"
    return hashlib.sha1(text.encode()).hexdigest()[:25]


class Sender:
    def __init__(
        self,
        channels: Channels,
        store: Store,
        *,
        attach_buttons: bool = False,
        unit_names: UnitNames | None = None,
    ) -> None:
        """`attach_buttons`: dispatch cards offer Attach me / Detach me (API v2); `unit_names`: the
        names the cards show for attached units."""
        self.unit_names = unit_names
        self.channels = channels
        self.store = store
        self.attach_buttons = attach_buttons

    async def send(self, feed: FeedSettings, posts: list[Post]) -> list[Post] | Fault:
        """Posts one batch; returns its posts as now recorded, or why it could not."""
        embeds = fit_embeds([render(p, self.unit_names) for p in posts])
        try:
            message = await bounded(self._post_message(feed, posts, embeds))
        except DISCORD_FAULTS as error:
            if isinstance(error, discord.HTTPException) and error.status in REFUSED_FOR_GOOD:
                return await self._send_refused(feed, posts, error)
            return self.channels.fault(feed.channel_id, error, "post")
        # record what the message shows, not what we sent (a nonce Discord has seen: an older attempt)
        shown = {
            p.key: p.version if same else None for p, same in zip(posts, shows_as_sent(message, embeds), strict=True)
        }
        await self.store.mark_sent(posts[0].batch, message.id, shown)
        self.channels.changed(feed.channel_id, "ok")
        log.info("feed: channel %s: posted message %s: %s", feed.channel_id, message.id, _calls(posts))
        return [replace(p, message_id=message.id, shown=shown[p.key]) for p in posts]

    async def edit(self, feed: FeedSettings, posts: list[Post]) -> list[Post] | Fault:
        """Edits one batch's message to show `posts`; returns them as now recorded, or why it could not."""
        message_id = posts[0].message_id
        assert message_id is not None
        message = self.channels.message(feed.channel_id, message_id)
        try:
            try:
                await bounded(
                    message.edit(
                        embeds=fit_embeds([render(p, self.unit_names) for p in posts]),
                        view=card_view(posts, attach=self.attach_buttons),
                        allowed_mentions=NO_PINGS,
                    )
                )
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
                await bounded(
                    message.edit(
                        embeds=[stand_in(p) for p in posts],
                        view=card_view(posts, attach=self.attach_buttons),
                        allowed_mentions=NO_PINGS,
                    )
                )
        except discord.NotFound:
            # Someone deleted the post on purpose: respect that, do not post those calls again.
            log.info("feed: message %s in channel %s was deleted; not editing it again", message_id, feed.channel_id)
            await self.store.mark_deleted(posts[0].batch)
            return [replace(p, state=PostState.DELETED, shown=p.version) for p in posts]
        except DISCORD_FAULTS as error:
            return self.channels.fault(feed.channel_id, error, "edit")
        await self.store.mark_shown(posts[0].batch, {p.key: p.version for p in posts})
        self.channels.changed(feed.channel_id, "ok")
        log.info("feed: channel %s: edited message %s: %s", feed.channel_id, message_id, _calls(posts))
        return [replace(p, shown=p.version) for p in posts]

    async def _post_message(
        self, feed: FeedSettings, posts: list[Post], embeds: list[discord.Embed]
    ) -> discord.Message:
        channel = self.channels.channel(feed.channel_id)
        ping = feed.ping_role_id and any(p.ping for p in posts)
        return await channel.send(
            content=f"<@&{feed.ping_role_id}> new emergency call" if ping else None,
            embeds=embeds,
            view=card_view(posts, attach=self.attach_buttons) or discord.utils.MISSING,
            nonce=posts[0].batch,
            allowed_mentions=pinging(feed.ping_role_id) if ping else NO_PINGS,
        )

    async def _send_refused(
        self, feed: FeedSettings, posts: list[Post], error: discord.HTTPException
    ) -> list[Post] | Fault:
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
                part = as_batch(part)
                await self.store.rebatch(part)
                sent = await self.send(feed, part)
                if isinstance(sent, Fault):
                    return sent
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
            message = await bounded(self._post_message(feed, posts, [stand_in(post)]))
        except DISCORD_FAULTS as again:
            return self.channels.fault(feed.channel_id, again, "post")
        await self.store.mark_sent(post.batch, message.id, {post.key: post.version})
        return [replace(post, message_id=message.id, shown=post.version)]


def _calls(posts: Sequence[Post]) -> str:
    """`911 #1001 active, 911 #1002 removed`: what a message shows, for its one log line."""
    return ", ".join(f"{p.kind} #{p.call_id} {p.state}" for p in posts)

"""Panic alerts and unit boards as lanes of their channel's one writer (`bot.delivery.outbox`): the
same bounded writes, backoff and channel faults as the feed's posts.

An alert is urgent (its post and its edits go before anything else in the channel). A board is
not, and is coalesced: it is rendered at most once every `units.board_edit_seconds`, however many
changes came meanwhile, and only the pages that changed are edited.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import discord

from ..delivery.channels import Channels
from ..delivery.faults import DISCORD_FAULTS
from ..delivery.outbox import Job
from ..delivery.pings import NO_PINGS, pinging
from ..delivery.writes import Fault, bounded
from ..embeds import embed_fingerprint, shows_as_sent
from ..sonoran.models import ServerId
from .acknowledge import alert_view
from .records import Alert, AlertRecords, BoardPage, BoardRecords
from .render import alert_content, alert_embed

log = logging.getLogger("bot.units")


def _alert_embed(alert: Alert) -> discord.Embed:
    """The alert's embed; whatever the CAD put in the unit, an alert is never held back by it."""
    try:
        return alert_embed(alert)
    except Exception:
        log.exception("units: panic alert %s cannot be drawn in full; posting it short", alert.id)
        who = f"unit #{alert.ident}" if alert.members is None else f"{len(alert.members)} more units"
        return discord.Embed(title=f"PANIC: {who}", colour=discord.Colour.red())


def _fingerprint(embed: discord.Embed) -> str:
    return hashlib.sha1(repr(embed_fingerprint(embed)).encode()).hexdigest()[:16]


class AlertLane:
    """The panic alerts of one CAD server in one channel. `alerts` is the engine's own map (open
    alerts by id): the lane reads it and records what Discord shows."""

    def __init__(
        self,
        channel_id: int,
        server_id: ServerId,
        role_id: int,
        alerts: dict[int, Alert],
        records: AlertRecords,
        channels: Channels,
    ) -> None:
        self.channel_id = channel_id
        self.server_id = server_id
        self.role_id = role_id
        self.alerts = alerts
        self._records = records
        self._channels = channels

    def __repr__(self) -> str:
        return f"AlertLane(channel={self.channel_id}, server={self.server_id})"

    async def next_job(self, due: Callable[[str], bool], *, urgent: bool) -> Job | None:
        if not urgent:
            return None
        for alert in sorted(self.alerts.values(), key=lambda a: a.id):
            key = f"alert:{alert.id}"
            if not due(key):
                continue
            if alert.message_id is None:
                return Job(key, functools.partial(self._post, alert))
            if alert.shown != alert.version:
                return Job(key, functools.partial(self._edit, alert))
        return None

    async def waiting(self) -> set[str]:
        return {f"alert:{a.id}" for a in self.alerts.values() if a.message_id is None or a.shown != a.version}

    def due_in(self) -> float | None:
        return None

    async def _post(self, alert: Alert) -> Fault | None:
        channel = self._channels.channel(self.channel_id)
        embed = _alert_embed(alert)
        try:
            message = await bounded(
                channel.send(
                    content=alert_content(alert, self.role_id),
                    embed=embed,
                    view=alert_view(alert) or discord.utils.MISSING,
                    nonce=alert.nonce,
                    allowed_mentions=pinging(self.role_id),
                )
            )
        except DISCORD_FAULTS as error:
            return self._channels.fault(self.channel_id, error, "post")
        shown = alert.version if shows_as_sent(message, [embed]) == [True] else None
        await self._records.mark_sent(alert.id, message.id, shown)
        log.info("units: channel %s: panic alert %s posted for unit #%s", self.channel_id, alert.id, alert.ident)
        self._settle(alert, message_id=message.id, shown=shown)
        return None

    async def _edit(self, alert: Alert) -> Fault | None:
        assert alert.message_id is not None
        message = self._channels.message(self.channel_id, alert.message_id)
        try:
            await bounded(
                message.edit(
                    content=alert_content(alert, self.role_id),
                    embed=_alert_embed(alert),
                    view=alert_view(alert),
                    allowed_mentions=NO_PINGS,  # an edit pings nobody; the post did
                )
            )
        except discord.NotFound:  # deleted in Discord on purpose: not posted again
            log.info("units: channel %s: panic alert %s was deleted; not editing it again", self.channel_id, alert.id)
        except DISCORD_FAULTS as error:
            return self._channels.fault(self.channel_id, error, "edit")
        await self._records.mark_shown(alert.id, alert.version)
        self._settle(alert, shown=alert.version)
        return None

    def _settle(self, sent: Alert, **shown: Any) -> None:
        """Records what Discord shows in the engine's map; the alert may have moved on meanwhile."""
        current = self.alerts.get(sent.id)
        if current is None:
            return
        current = replace(current, **shown)
        if current.is_open:
            self.alerts[sent.id] = current
        else:
            del self.alerts[sent.id]


class BoardLane:
    """One unit board: its pages (one message each), edited in place as the units change."""

    def __init__(
        self,
        channel_id: int,
        server_id: ServerId,
        render: Callable[[], list[discord.Embed] | None],
        records: BoardRecords,
        channels: Channels,
        *,
        every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`render()`: the board's pages now, or None while the units are not known yet."""
        self.channel_id = channel_id
        self.server_id = server_id
        self._render = render
        self._records = records
        self._channels = channels
        self._every = every
        self._clock = clock
        self._dirty = True
        self._next_render = 0.0
        self._embeds: list[discord.Embed] | None = None
        self._pages: dict[int, BoardPage] | None = None

    def __repr__(self) -> str:
        return f"BoardLane(channel={self.channel_id}, server={self.server_id})"

    def changed(self) -> None:
        """The units changed: the board is rendered again when its time comes."""
        self._dirty = True

    def hurry(self) -> None:
        """What changed is rendered at the next look, not at the end of the window (a clean stop)."""
        if self._dirty:
            self._next_render = 0.0

    async def next_job(self, due: Callable[[str], bool], *, urgent: bool) -> Job | None:
        if urgent:
            return None
        if self._pages is None:
            self._pages = await self._records.pages(self.channel_id, self.server_id)
        now = self._clock()
        if self._dirty and now >= self._next_render:
            try:
                embeds = self._render()
            except Exception:  # a bug in the board must not hold the channel's other messages
                log.exception(
                    "units: the board of CAD server %s cannot be drawn; it waits for the next change", self.server_id
                )
                embeds = None
            self._dirty = False  # None: the units are not known yet; the read that knows them says changed()
            if embeds is not None:
                self._embeds, self._next_render = embeds, now + self._every
        if self._embeds is None:
            return None
        for index, embed in enumerate(self._embeds):
            key = f"board:{self.server_id}:{index}"
            page = self._pages.get(index)
            if not due(key):
                continue
            if page is None or page.message_id is None:
                return Job(key, functools.partial(self._post, index, embed, page))
            if page.shown != _fingerprint(embed):
                return Job(key, functools.partial(self._edit, page, embed))
        for index in sorted(i for i in self._pages if i >= len(self._embeds)):
            key = f"board:{self.server_id}:{index}"
            if due(key):
                return Job(key, functools.partial(self._delete, self._pages[index]))
        return None

    async def waiting(self) -> set[str]:
        pages = set(range(len(self._embeds or []))) | set(self._pages or {})  # to post or edit, and to delete
        return {f"board:{self.server_id}:{index}" for index in pages}

    def due_in(self) -> float | None:
        return max(0.0, self._next_render - self._clock()) if self._dirty else None

    async def _post(self, index: int, embed: discord.Embed, page: BoardPage | None) -> Fault | None:
        assert self._pages is not None
        if page is None:  # the nonce is stored before the post: a re-send after a crash is the same message
            page = self._pages[index] = await self._records.plan(
                self.channel_id, self.server_id, index, secrets.token_hex(12)
            )
        channel = self._channels.channel(self.channel_id)
        try:
            message = await bounded(channel.send(embed=embed, nonce=page.nonce, allowed_mentions=NO_PINGS))
        except DISCORD_FAULTS as error:
            return self._channels.fault(self.channel_id, error, "post")
        await self._record(page, embed, message)
        return None

    async def _edit(self, page: BoardPage, embed: discord.Embed) -> Fault | None:
        assert self._pages is not None and page.message_id is not None
        message = self._channels.message(self.channel_id, page.message_id)
        try:
            edited = await bounded(message.edit(embed=embed, allowed_mentions=NO_PINGS))
        except discord.NotFound:  # the board's message was deleted: the board posts it again
            await self._records.drop(self.channel_id, self.server_id, page.page)
            del self._pages[page.page]
            return None
        except DISCORD_FAULTS as error:
            return self._channels.fault(self.channel_id, error, "edit")
        await self._record(page, embed, edited)
        return None

    async def _record(self, page: BoardPage, embed: discord.Embed, message: discord.Message) -> None:
        """What the message shows now (a nonce Discord has seen answers with the first message)."""
        assert self._pages is not None
        shown = _fingerprint(embed) if shows_as_sent(message, [embed]) == [True] else None
        await self._records.mark(self.channel_id, self.server_id, page.page, message.id, shown)
        self._pages[page.page] = BoardPage(page.page, page.nonce, message.id, shown)

    async def _delete(self, page: BoardPage) -> Fault | None:
        assert self._pages is not None
        if page.message_id is not None:
            message = self._channels.message(self.channel_id, page.message_id)
            try:
                await bounded(message.delete())
            except discord.NotFound:
                pass
            except DISCORD_FAULTS as error:
                return self._channels.fault(self.channel_id, error, "edit")
        await self._records.drop(self.channel_id, self.server_id, page.page)
        del self._pages[page.page]
        return None

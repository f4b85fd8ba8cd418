"""The audit channel (`[audit] channel_id`): one embed per write made through the bot, and per
refusal, with who (as text, pinging nobody), what, the call and server, and the outcome.

Auditing never delays or blocks the action: `record()` only queues. A background task posts the
queue in batches (10 embeds, 6,000 characters a message). A failing channel is logged once per
change of state, and what it could not take waits (up to `BACKLOG` records, the oldest dropped
first, counted) for the channel to work again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import enum
import logging
from dataclasses import dataclass, field

import discord

from .aliases import NO_PINGS, Interaction
from .community import community_of
from .delivery.faults import DISCORD_FAULTS, describe_channel_fault
from .embeds import EMBED_TOTAL_LIMIT, clean, embed_size, timestamp
from .sonoran.models import CallId, ServerId
from .statechanges import StateChanges
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

EMBEDS_PER_MESSAGE = 10
BACKLOG = 1_000
RETRY_SECONDS = 30.0
GATHER_SECONDS = 1.0  # a record waits this long for others to share its message


class Outcome(enum.StrEnum):
    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"
    UNKNOWN = "outcome unknown"  # the CAD did not say (a timeout after sending)


DONE, REFUSED, FAILED, UNKNOWN = Outcome.DONE, Outcome.REFUSED, Outcome.FAILED, Outcome.UNKNOWN
COLOURS = {
    DONE: discord.Colour.green(),
    REFUSED: discord.Colour.orange(),
    FAILED: discord.Colour.red(),
    UNKNOWN: discord.Colour.gold(),
}


@dataclass(frozen=True)
class AuditRecord:
    member_name: str
    member_id: int
    action: str  # "/911", "/note", "/close", "/remove911"
    server_id: ServerId
    outcome: Outcome
    call_id: CallId | None = None
    reason: str = ""  # why it was refused or failed, as the member was told
    detail: str = ""  # what was asked, for a read (a lookup's query and how many records came back)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def audit_embed(record: AuditRecord) -> discord.Embed:
    what = f"{record.action} call #{record.call_id}" if record.call_id is not None else record.action
    embed = discord.Embed(title=f"{what}: {record.outcome}", colour=COLOURS.get(record.outcome))
    embed.add_field(name="Member", value=f"{clean(record.member_name, 80)} ({record.member_id})", inline=True)
    embed.add_field(name="Server", value=str(record.server_id), inline=True)
    embed.add_field(name="When", value=timestamp(record.at, "f"), inline=True)
    if record.detail:
        embed.add_field(name="Query", value=clean(record.detail, 300), inline=False)
    if record.reason:
        embed.add_field(name="Why", value=clean(record.reason, 1000), inline=False)
    return embed


def audit(
    interaction: Interaction,
    action: str,
    server_id: ServerId,
    call_id: CallId | None,
    outcome: Outcome,
    reason: str = "",
    detail: str = "",
) -> None:
    """The one way a write (done, failed, unknown), a lookup or a refusal reaches the audit channel,
    if there is one: who, what, which call (or query), and the sentence the member was told."""
    community = community_of(interaction)
    log = community.audit_log(interaction.guild_id) if community is not None else None
    if log is not None:
        log.record(
            AuditRecord(
                member_name=interaction.user.display_name,
                member_id=interaction.user.id,
                action=action,
                server_id=server_id,
                outcome=outcome,
                call_id=call_id,
                reason=reason,
                detail=detail,
            )
        )


def audit_refusal(
    interaction: Interaction, action: str, server_id: ServerId, call_id: CallId | None, reason: str
) -> None:
    """A refused write (a slash command or a card click)."""
    audit(interaction, action, server_id, call_id, REFUSED, reason)


class AuditLog:
    def __init__(self, client: discord.Client, channel_id: int) -> None:
        self.client = client
        self.channel_id = channel_id
        self._queue: collections.deque[AuditRecord] = collections.deque(maxlen=BACKLOG)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._state = StateChanges()
        self._lock = asyncio.Lock()  # one flush at a time: a record is posted once
        self.dropped = 0

    def __repr__(self) -> str:
        return f"AuditLog(channel={self.channel_id}, queued={len(self._queue)})"

    def record(self, record: AuditRecord) -> None:
        """Queues `record`; never waits, never raises."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(record)
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit")

    async def stop(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), 2.0)  # what is queued, if the channel answers quickly
            await cancel_and_wait(self._task)
            self._task = None

    async def flush(self) -> bool:
        """Posts what is queued, in batches; False when the channel failed (the rest stays queued)."""
        async with self._lock:
            return await self._flush()

    async def _flush(self) -> bool:
        while self._queue:
            batch: list[discord.Embed] = []
            size = 0
            for record in list(self._queue)[:EMBEDS_PER_MESSAGE]:
                embed = audit_embed(record)
                if batch and size + embed_size(embed) > EMBED_TOTAL_LIMIT:
                    break
                batch.append(embed)
                size += embed_size(embed)
            try:
                await self.client.get_partial_messageable(self.channel_id).send(embeds=batch, allowed_mentions=NO_PINGS)
            except DISCORD_FAULTS as error:
                self._changed(describe_channel_fault(self.client, self.channel_id, error, "post"))
                return False
            for _ in batch:
                self._queue.popleft()
            self._changed("ok")
        return True

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(GATHER_SECONDS)
            self._wake.clear()
            if not await self.flush():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS)
                self._wake.set()

    def _changed(self, state: str) -> None:
        if self._state.change(self.channel_id, state) is None:
            return
        if state == "ok":
            log.info("audit: channel %s works again", self.channel_id)
        else:
            log.warning("audit: channel %s: %s; records are kept until it works", self.channel_id, state)
